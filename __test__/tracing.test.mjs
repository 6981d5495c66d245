// Tracing with OpenTelemetry (issue 11): spans of flows recorded by the real SDK (in-memory
// exporter), parents as the causal tree, one trace across a worker thread and a NATS process.
import { fileURLToPath } from 'node:url'
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'
import { NATS_URL, spawnReady, stopAll } from './nats/harness.mjs'
import { thrown } from './helpers.mjs'

const exporter = new InMemorySpanExporter()
const contextManager = new AsyncLocalStorageContextManager()
const register = () =>
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable())
})
afterAll(() => {
  context.disable()
  trace.disable()
})

const runtimes = []
function runtime(config) {
  const rt = initializeHappen(config)
  runtimes.push(rt)
  return rt
}
beforeEach(() => {
  trace.disable()
  register()
  exporter.reset()
})
afterEach(async () => {
  while (runtimes.length) await runtimes.pop().shutdown()
})

const spans = () => exporter.getFinishedSpans()
const idOf = (span) => span.spanContext().spanId
const traceOf = (span) => span.spanContext().traceId
const parentOf = (span) => span.parentSpanContext?.spanId
const named = (name, node) =>
  spans().filter((s) => s.name === name && (node === undefined || s.attributes['happen.node'] === node))
const one = (name, node) => {
  const found = named(name, node)
  expect(found, `${name} ${node ?? ''}`).toHaveLength(1)
  return found[0]
}

describe('tracing with OpenTelemetry', () => {
  it('a fan-out with divergent flows: a span per node under one send span, steps as events, causal ids as attributes', async () => {
    const rt = runtime()
    const nodes = ['a', 'b', 'c'].map((id) => rt.createNode(id))
    rt.createNodeArray(nodes).on('order', function route(event, ctx) {
      if (ctx.node.id === 'a')
        return function express() {
          return 'fast'
        }
      if (ctx.node.id === 'b')
        return async function standard() {
          await new Promise((resolve) => setTimeout(resolve, 2))
          return function ship() {
            return 'slow'
          }
        }
      return 'none'
    })
    const sent = rt.createNodeArray(nodes).send({ type: 'order', payload: 1 })
    expect(await sent.return()).toEqual({ a: 'fast', b: 'slow', c: 'none' })
    const id = (await sent).id

    const send = one('happen.send order')
    expect(send.kind).toBe(SpanKind.PRODUCER)
    expect(parentOf(send)).toBeUndefined()
    const events = {}
    for (const node of ['a', 'b', 'c']) {
      const span = one('happen.process order', node)
      expect(span.kind).toBe(SpanKind.CONSUMER)
      expect(parentOf(span)).toBe(idOf(send))
      expect(traceOf(span)).toBe(traceOf(send))
      expect(span.attributes).toEqual({
        'happen.event.id': id,
        'happen.correlation_id': id,
        'happen.node': node,
      })
      expect(span.status.code).toBe(SpanStatusCode.UNSET)
      events[node] = span.events.map((e) => e.name)
    }
    expect(events).toEqual({ a: ['route', 'express'], b: ['route', 'standard', 'ship'], c: ['route'] })
    expect(spans()).toHaveLength(4)
  })

  it('an event sent from a flow is a child of that flow’s span; spans a handler starts are children too', async () => {
    const rt = runtime()
    const a = rt.createNode('a')
    const b = rt.createNode('b')
    const tracer = trace.getTracer('app')
    a.on('start', async function first(event, ctx) {
      await new Promise((resolve) => setTimeout(resolve, 1))
      const inner = tracer.startSpan('app.work')
      inner.end()
      return ctx.node.send(b, { type: 'next' }).return()
    })
    b.on('next', (event) => event.context.causal.causationId)
    const sent = a.send({ type: 'start' })
    const first = (await sent).id
    expect(await sent.return()).toBe(first)

    const flowA = one('happen.process start', 'a')
    const flowB = one('happen.process next', 'b')
    const work = one('app.work')
    expect(parentOf(flowB)).toBe(idOf(flowA))
    expect(parentOf(work)).toBe(idOf(flowA))
    expect(flowB.attributes['happen.causation_id']).toBe(first)
    expect(flowB.attributes['happen.correlation_id']).toBe(first)
    expect(new Set(spans().map(traceOf)).size).toBe(1)
    // One send span only: the root send's (the second send has its parent flow).
    expect(named('happen.send start')).toHaveLength(1)
    expect(named('happen.send next')).toHaveLength(0)
  })

  it('a send made inside an active span (an HTTP handler, say) is its child, with no send span', async () => {
    const rt = runtime()
    const a = rt.createNode('a')
    a.on('hit', () => 'ok')
    const tracer = trace.getTracer('http')
    await tracer.startActiveSpan('GET /orders', async (request) => {
      await new Promise((resolve) => setTimeout(resolve, 1))
      expect(await a.send({ type: 'hit' }).return()).toBe('ok')
      request.end()
    })
    const request = one('GET /orders')
    const flow = one('happen.process hit', 'a')
    expect(parentOf(flow)).toBe(idOf(request))
    expect(traceOf(flow)).toBe(traceOf(request))
    expect(named('happen.send hit')).toHaveLength(0)
  })

  it('a batch: one span for the batch flow with its size', async () => {
    const rt = runtime()
    const a = rt.createNode('a')
    a.on('tick', (events) => events.length)
    const sent = a.send([
      { type: 'tick', payload: 1 },
      { type: 'tick', payload: 2 },
      { type: 'tick', payload: 3 },
    ])
    expect(await sent.return()).toBe(3)
    const span = one('happen.process tick', 'a')
    expect(span.attributes['happen.batch.size']).toBe(3)
    expect(span.attributes['happen.event.id']).toBe((await sent).ids[0])
  })

  it('a failure: status ERROR with the step and message, the exception recorded; other nodes unaffected', async () => {
    const rt = runtime()
    const good = rt.createNode('good')
    const bad = rt.createNode('bad')
    good.on('job', () => 'done')
    bad.on('job', function check() {
      return function charge() {
        throw new RangeError('card declined')
      }
    })
    const results = await rt.createNodeArray([good, bad]).send({ type: 'job' }).return({ settled: true })
    expect(results.bad.status).toBe('rejected')
    const failed = one('happen.process job', 'bad')
    expect(failed.status).toEqual({ code: SpanStatusCode.ERROR, message: 'charge: card declined' })
    const exception = failed.events.find((e) => e.name === 'exception')
    expect(exception.attributes['exception.message']).toBe('card declined')
    expect(exception.attributes['exception.type']).toBe('RangeError')
    expect(failed.events.map((e) => e.name)).toEqual(['check', 'charge', 'exception'])
    expect(one('happen.process job', 'good').status.code).toBe(SpanStatusCode.UNSET)
  })

  it('with no provider registered nothing is traced; a provider registered later is used by the next send', async () => {
    trace.disable()
    const rt = runtime()
    const a = rt.createNode('a')
    a.on('x', () => 1)
    const untraced = await a.send({ type: 'x' })
    expect(untraced._trace).toBeNull()
    register()
    await a.send({ type: 'x' }).return()
    expect(spans().map((s) => s.name)).toEqual(['happen.send x', 'happen.process x'])
  })

  it('initializeHappen({ tracing: false }) traces nothing even with a provider; a non-boolean is refused', async () => {
    const rt = runtime({ tracing: false })
    const a = rt.createNode('a')
    a.on('x', () => 1)
    await a.send({ type: 'x' }).return()
    expect(spans()).toEqual([])
    expect(rt._tracing).toBeNull()
    const error = thrown(() => initializeHappen({ tracing: 'yes' }))
    expect(error).toBeInstanceOf(TypeError)
    expect(error.message).toContain('config.tracing')
    expect(error.message).toContain('boolean')
  })

  it('a chain across a worker thread: one trace id, each flow the child of the flow that sent its event', async () => {
    const rt = runtime()
    const main = rt.createNode('main')
    main.on('relayed', () => 'back in main')
    const starter = rt.createNode('starter')
    starter.on('go', (event, ctx) => ctx.node.send('w-relay', { type: 'relay', payload: { to: 'main' } }).return())
    await rt.worker(new URL('./fixtures/workers/traced.mjs', import.meta.url), { workerData: { prefix: 'w' } })
    expect(await starter.send({ type: 'go' }).return()).toEqual({ answer: 'back in main' })

    const remote = await rt.node('w-spans').send({ type: 'spans' }).return()
    const relay = remote.find((s) => s.name === 'happen.process relay')
    const go = one('happen.process go', 'starter')
    const back = one('happen.process relayed', 'main')
    expect(relay.node).toBe('w-relay')
    expect(relay.traceId).toBe(traceOf(go))
    expect(relay.parentSpanId).toBe(idOf(go))
    expect(traceOf(back)).toBe(traceOf(go))
    expect(parentOf(back)).toBe(relay.spanId)
  })
})

describe('tracing: false reaches worker threads', () => {
  it('a worker started by a runtime with tracing: false traces nothing, though it registers a provider', async () => {
    const rt = runtime({ tracing: false })
    const main = rt.createNode('main')
    main.on('relayed', () => 'back')
    await rt.worker(new URL('./fixtures/workers/traced.mjs', import.meta.url), { workerData: { prefix: 'off' } })
    expect(await main.send('off-relay', { type: 'relay', payload: { to: 'main' } }).return()).toEqual({
      answer: 'back',
    })
    expect(await rt.node('off-spans').send({ type: 'spans' }).return()).toEqual([])
    expect(spans()).toEqual([])
  })
})

describe.skipIf(!NATS_URL)('tracing across NATS', () => {
  afterAll(() => stopAll())

  it('a chain across a NATS process: one trace id, correct parents, W3C trace context on the wire', async () => {
    const script = fileURLToPath(new URL('./nats/traced-host.mjs', import.meta.url))
    const prefix = `otel${process.pid}`
    await spawnReady(script, [NATS_URL, prefix], [prefix])
    const rt = runtime({ transport: { type: 'nats', servers: [NATS_URL] } })
    await rt
    const main = rt.createNode(`${prefix}-main`)
    main.on('relayed', () => 'back over NATS')
    await rt.ready()
    const tracer = trace.getTracer('http')
    const answer = await tracer.startActiveSpan('POST /relay', async (request) => {
      const result = await main.send(`${prefix}-relay`, { type: 'relay', payload: { to: main.id } }).return()
      request.end()
      return result
    })
    expect(answer).toEqual({ answer: 'back over NATS' })

    const remote = await main.send(`${prefix}-spans`, { type: 'spans' }).return()
    const request = one('POST /relay')
    const relay = remote.find((s) => s.name === 'happen.process relay')
    const back = one('happen.process relayed', main.id)
    expect(relay.node).toBe(`${prefix}-relay`)
    expect(relay.traceId).toBe(traceOf(request))
    expect(relay.parentSpanId).toBe(idOf(request))
    expect(traceOf(back)).toBe(traceOf(request))
    expect(parentOf(back)).toBe(relay.spanId)
  })
})
