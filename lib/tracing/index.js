'use strict'

// Tracing with OpenTelemetry: spans for happen's flows, through `@opentelemetry/api` only.
//
// What holds:
// - Off costs nothing: without `@opentelemetry/api` installed, or with `tracing: false`, a
//   runtime has no tracing (`runtime._tracing === null`) and every hook on the send path is one
//   null check. With the API installed, each send reads once whether a tracer provider is
//   registered (the API's global registration slot: one property read); with none, it goes on
//   as untraced, so a provider registered after initializeHappen() is picked up by the next send.
// - Every flow (one handler of one target for one send) is a span `happen.process <type>`
//   (kind CONSUMER) with `happen.event.id`, `happen.causation_id`, `happen.correlation_id`,
//   `happen.node` (and `happen.batch.size` for a batch). Its steps are span events named after
//   the step (the handler's name first); a failure records the exception and sets status ERROR
//   with `<step>: <message>`; a flow that finishes leaves the status UNSET (OpenTelemetry's
//   advice for instrumentation libraries).
// - Parents follow the causal tree: the flows of an event sent from inside a flow are children
//   of that flow's span; the flows of a send made outside any flow are children of the active
//   OpenTelemetry span (`context.active()`, e.g. an HTTP request's). A send with no parent span
//   at all gets one `happen.send <type>` span (kind PRODUCER, ended at once) that its flows share
//   as parent, so every branch of one event, here and elsewhere, is in one trace.
// - While a traced flow's first step runs it is the active OpenTelemetry context (one
//   `context.with` per traced flow, none when untraced), and the context manager carries it
//   across the flow's awaits: spans the application starts in a handler are children of the
//   flow's span.
// - Across processes and threads the parent travels as a W3C trace context
//   (`{ traceparent, tracestate }`, see carrierOf) in the seam's `delivery.trace` and
//   `message.trace` (lib/transport.js); where it arrives, the served flows' spans are its
//   children (a remote parent), so one trace spans every process and thread. Each process and
//   thread records its own spans with the provider it registered.

const { errorMessage } = require('../errors')
const { loadOtelApi, registeredProvider } = require('../otel')
const { version } = require('../../package.json')

/** The API once a runtime asked for tracing (lib/otel.js). */
let api
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** A runtime's tracing: null when `enabled` is false or @opentelemetry/api is not installed. */
function createTracing(enabled) {
  if (enabled === false || (api = loadOtelApi()) === null) return null
  return new Tracing(api)
}

class Tracing {
  constructor(otel) {
    this.otel = otel
    /** The registered provider the tracer came from, and that tracer. */
    this.provider = undefined
    this.tracer = null
  }

  /** The registered provider's tracer, or null when no provider is registered. */
  current() {
    const provider = registeredProvider('trace')
    if (provider === undefined) return null
    if (provider !== this.provider) {
      this.provider = provider
      this.tracer = provider.getTracer('happen', version)
    }
    return this.tracer
  }

  /**
   * A send was planned: sets `result._trace` to the context its flows' spans are children of
   * (left null when no provider is registered). `frame`: the sending flow or null; `inbound`:
   * what a transport gave for an event from elsewhere (its `trace`), or undefined.
   */
  sent(result, frame, inbound) {
    const tracer = this.current()
    if (tracer === null) return
    const otel = this.otel
    let parent
    if (inbound !== undefined) parent = contextOf(otel, inbound.trace)
    else if (frame !== null && frame.span !== null) parent = otel.trace.setSpan(frame.result._trace, frame.span)
    else parent = otel.context.active()
    if (otel.trace.getSpan(parent) === undefined) {
      const span = tracer.startSpan(
        `happen.send ${result._type}`,
        { kind: otel.SpanKind.PRODUCER, attributes: causalAttributes(result._causal) },
        parent,
      )
      span.end()
      parent = otel.trace.setSpan(parent, span)
    }
    result._trace = parent
  }

  /**
   * Starts the span of a flow whose send is traced and runs the flow's first step (`run(flow,
   * fn)`, which is runFlow) with that span active.
   */
  runFlow(flow, fn, run) {
    const otel = this.otel
    const result = flow.result
    const attributes = causalAttributes(result._causal)
    attributes['happen.node'] = flow.node.id
    if (Array.isArray(flow.event)) attributes['happen.batch.size'] = flow.event.length
    const span = this.tracer.startSpan(
      `happen.process ${result._type}`,
      { kind: otel.SpanKind.CONSUMER, attributes },
      result._trace,
    )
    span.addEvent(flow.step)
    flow.span = span
    return otel.context.with(otel.trace.setSpan(result._trace, span), run, undefined, flow, fn)
  }

  /** A traced flow ended: with `error` it failed at its step `flow.step`. */
  flowEnded(flow, failed, error) {
    const span = flow.span
    if (failed) {
      span.recordException(error instanceof Error ? error : errorMessage(error))
      span.setStatus({ code: this.otel.SpanStatusCode.ERROR, message: `${flow.step}: ${errorMessage(error)}` })
    }
    span.end()
  }

  /** The W3C trace context a send's targets elsewhere continue from, or null (untraced). */
  carrierOf(result) {
    if (result._trace === null) return null
    const span = this.otel.trace.getSpan(result._trace)
    return span === undefined ? null : carrier(span.spanContext())
  }
}

/** A span context as `{ traceparent, tracestate? }` (W3C Trace Context), null when invalid. */
function carrier(spanContext) {
  if (!api.isSpanContextValid(spanContext)) return null
  const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, '0')
  const out = { traceparent: `00-${spanContext.traceId}-${spanContext.spanId}-${flags}` }
  const state = spanContext.traceState === undefined ? '' : spanContext.traceState.serialize()
  if (state !== '') out.tracestate = state
  return out
}

/** The context a carrier from elsewhere names (a remote parent), or the root when it names none. */
function contextOf(otel, trace) {
  const root = otel.ROOT_CONTEXT
  if (trace == null || typeof trace.traceparent !== 'string') return root
  const match = TRACEPARENT.exec(trace.traceparent)
  if (match === null) return root
  const spanContext = { traceId: match[1], spanId: match[2], traceFlags: Number.parseInt(match[3], 16), isRemote: true }
  if (typeof trace.tracestate === 'string' && trace.tracestate !== '')
    spanContext.traceState = otel.createTraceState(trace.tracestate)
  if (!otel.isSpanContextValid(spanContext)) return root
  return otel.trace.setSpanContext(root, spanContext)
}

function causalAttributes(causal) {
  const attributes = { 'happen.event.id': causal.id }
  if (causal.causationId != null) attributes['happen.causation_id'] = causal.causationId
  if (causal.correlationId != null) attributes['happen.correlation_id'] = causal.correlationId
  return attributes
}

module.exports = { createTracing }
