'use strict'

// Metrics with OpenTelemetry: counts and durations of happen's sends and flows, through
// `@opentelemetry/api` only.
//
// What holds:
// - Off costs nothing: without `@opentelemetry/api` installed, or with `metrics: false`, a
//   runtime has no metrics (`runtime._metrics === null`) and every hook on the send path is one
//   null check. With the API installed, each send reads once whether a meter provider is
//   registered (the API's global registration slot: one property read); with none, nothing else
//   is done and no instrument exists, so a provider registered after initializeHappen() is
//   picked up by the next send. Instruments are created once per provider, and every runtime
//   of the thread reports through them (their nodes' ids tell them apart).
// - With a provider, the send path only counts, in plain records of this module: no
//   instrument is called per send or per flow (an SDK instrument hashes its attributes on every
//   call). The counts are reported through observable instruments by one batch callback, which
//   the SDK calls at each collection. Durations and batch sizes wait in bounded arrays per
//   attribute set and are recorded into their histograms from that same callback: the SDK
//   observes every observable instrument of a meter before it collects the synchronous ones,
//   in one collection (MeterSharedState.collect in @opentelemetry/sdk-metrics: `await
//   observableRegistry.observe(...)`, then `metricStorage.collect(...)`), so a collection
//   exports the samples its callback just recorded. Past FLUSH_AT samples an array is recorded
//   at once, so memory stays bounded when nothing collects.
// - Attributes are few and low-cardinality: the node id, the event type (a mixed batch's
//   types joined by ', ', as errors name it), the outcome and the error's code or name; never
//   a payload or an event id.
// - A flow (one handler of one target for one send, as a span is in lib/tracing) is counted by
//   the runtime that runs it, so a flow in another process or thread is counted there, with
//   the provider registered there, and never twice.
//
// Instruments of sends and flows (named `happen.*`: the messaging conventions describe a
// broker's clients, not an in-process send; `error.type` is the general conventions' attribute):
//   happen.event.sent      ObservableCounter      events sent from here      {happen.event.type}
//   happen.flow.delivered  ObservableCounter      flows started              {happen.node, happen.event.type}
//   happen.flow.failures   ObservableCounter      flows failed               {happen.node, happen.event.type, error.type}
//   happen.flow.active     ObservableUpDownCounter flows running             {happen.node}
//   happen.flow.duration   Histogram (s)          flows ended                {happen.node, happen.event.type, happen.outcome}
//   happen.batch.size      Histogram ({event})    batches sent               {happen.event.type}
// of the NATS connections of the thread's runtimes (summed over them), counted by a
// TransportMeter where the transport sends and takes messages (reconnections and drops are
// read from the transport at collection):
//   messaging.client.sent.messages      ObservableCounter  messages published   {messaging.system}
//   messaging.client.consumed.messages  ObservableCounter  messages received    {messaging.system}
//   happen.transport.sent.bytes         ObservableCounter  their headers and bodies, in bytes
//   happen.transport.consumed.bytes     ObservableCounter  the same, received
//   happen.transport.reconnections      ObservableCounter  connections made again after a loss
//   happen.transport.resends            ObservableCounter  requests sent again (lost in transit)
//   happen.transport.dropped            ObservableCounter  messages dropped by validation {messaging.system, happen.drop.kind}
// (the messaging conventions name the first two; the others have no convention);
// and of the worker threads the thread's runtimes started, read from their transports:
//   happen.worker.queue.depth  ObservableUpDownCounter  sends waiting for a thread's answer {happen.worker.thread}

const { performance } = require('node:perf_hooks')
const { HappenError } = require('../errors')
const { version } = require('../../package.json')
const { loadOtelApi, registeredProvider } = require('../otel')

/** How many samples wait for a collection per attribute set before they are recorded at once. */
const FLUSH_AT = 4096
const DURATION_BOUNDARIES = [
  0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
]
const BATCH_BOUNDARIES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]

/** The API once a runtime asked for metrics (lib/otel.js). */
let api
/** The provider the thread's instruments come from, and the Recorder that reports through them. */
let provider
let recorder = null
/** The TransportMeter of every open transport of the thread's metered runtimes. */
const transportMeters = new Set()
/** The worker-threads transports of the thread's metered runtimes (see watchWorkers). */
const workerTransports = new Set()

/** A runtime's metrics: null when `enabled` is false or @opentelemetry/api is not installed. */
function createMetrics(enabled) {
  if (enabled === false || (api = loadOtelApi()) === null) return null
  return METRICS
}

/** The registered provider's Recorder, or null when no meter provider is registered. */
function current() {
  const registered = registeredProvider('metrics')
  if (registered === undefined) return null
  if (registered !== provider) {
    provider = registered
    recorder = new Recorder(registered.getMeter('happen', version))
  }
  return recorder
}

const METRICS = {
  /**
   * A send was planned: sets `result._meter` (the Recorder its flows count in, null when no
   * provider is registered) and counts the events of a send made here (`inbound` undefined).
   */
  sent(result, input, batch, inbound) {
    const into = current()
    result._meter = into
    if (into !== null && inbound === undefined) into.eventsSent(result._type, input, batch)
  },
}

/** The counts of one thread for one provider, and the instruments that report them. */
class Recorder {
  constructor(meter) {
    /** By event type: { attributes, count } of events sent. */
    this.sentByType = new Map()
    /** By event type: the Samples of batch sizes. */
    this.batchSizes = new Map()
    /** By node id, then event type: the FlowRecord of their flows. */
    this.flows = new Map()
    this.sentCounter = meter.createObservableCounter('happen.event.sent', {
      description: 'Events sent from this process (each event of a batch counts)',
      unit: '{event}',
    })
    this.delivered = meter.createObservableCounter('happen.flow.delivered', {
      description: 'Flows started: one handler of one node for one send',
      unit: '{flow}',
    })
    this.failures = meter.createObservableCounter('happen.flow.failures', {
      description: 'Flows that failed, by error code (a HappenError) or name',
      unit: '{flow}',
    })
    this.active = meter.createObservableUpDownCounter('happen.flow.active', {
      description: 'Flows started and not yet ended',
      unit: '{flow}',
    })
    this.duration = meter.createHistogram('happen.flow.duration', {
      description: 'How long flows ran, from their start to their value or failure',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BOUNDARIES },
    })
    this.batchSize = meter.createHistogram('happen.batch.size', {
      description: 'Events per batch sent',
      unit: '{event}',
      advice: { explicitBucketBoundaries: BATCH_BOUNDARIES },
    })
    this.transport = transportInstruments(meter)
    this.queueDepth = meter.createObservableUpDownCounter('happen.worker.queue.depth', {
      description: "Sends to a worker thread waiting for the thread's answer",
      unit: '{send}',
    })
    meter.addBatchObservableCallback(
      (observer) => this.observe(observer),
      [this.sentCounter, this.delivered, this.failures, this.active, this.queueDepth, ...Object.values(this.transport)],
    )
  }

  eventsSent(type, input, batch) {
    if (!batch) return this.countSent(type, 1)
    const count = input.length
    let sizes = this.batchSizes.get(type)
    if (sizes === undefined) this.batchSizes.set(type, (sizes = new Samples({ 'happen.event.type': type })))
    sizes.add(count, this.batchSize)
    // Events of one type usually come in runs: each run is counted at once.
    let runType = count === 0 ? null : input[0].type
    let run = 0
    for (let i = 0; i < count; i++) {
      if (input[i].type !== runType) {
        this.countSent(runType, run)
        runType = input[i].type
        run = 0
      }
      run++
    }
    if (run > 0) this.countSent(runType, run)
  }

  countSent(type, n) {
    const entry = this.sentByType.get(type)
    if (entry !== undefined) entry.count += n
    else this.sentByType.set(type, { attributes: { 'happen.event.type': type }, count: n })
  }

  /** A flow of node `node` for an event of type `type` started: the record it ends in. */
  flowStarted(node, type) {
    let byType = this.flows.get(node)
    if (byType === undefined) this.flows.set(node, (byType = new Map()))
    let record = byType.get(type)
    if (record === undefined) byType.set(type, (record = new FlowRecord(this, node, type)))
    record.started++
    return record
  }

  /** The batch observable callback: reports every count, and records the waiting samples. */
  observe(observer) {
    for (const { attributes, count } of this.sentByType.values()) observer.observe(this.sentCounter, count, attributes)
    for (const [node, byType] of this.flows) {
      let active = 0
      for (const record of byType.values()) {
        active += record.started - record.ended
        observer.observe(this.delivered, record.started, record.attributes)
        for (const failure of record.failures.values())
          observer.observe(this.failures, failure.count, failure.attributes)
        record.ok.flush(this.duration)
        record.error.flush(this.duration)
      }
      observer.observe(this.active, active, { 'happen.node': node })
    }
    for (const sizes of this.batchSizes.values()) sizes.flush(this.batchSize)
    if (transportMeters.size > 0) observeTransports(observer, this.transport)
    for (const transport of workerTransports)
      for (const worker of transport.workers.values())
        observer.observe(this.queueDepth, worker.waiting, { 'happen.worker.thread': worker.thread.threadId })
  }
}

function transportInstruments(meter) {
  const counter = (name, description, unit) => meter.createObservableCounter(name, { description, unit })
  return {
    sentMessages: counter('messaging.client.sent.messages', 'Messages published to the server', '{message}'),
    consumedMessages: counter('messaging.client.consumed.messages', 'Messages received from the server', '{message}'),
    sentBytes: counter('happen.transport.sent.bytes', "Bytes of the messages' headers and bodies published", 'By'),
    consumedBytes: counter(
      'happen.transport.consumed.bytes',
      "Bytes of the messages' headers and bodies received",
      'By',
    ),
    reconnections: counter(
      'happen.transport.reconnections',
      'Connections made again after one was lost',
      '{reconnection}',
    ),
    resends: counter('happen.transport.resends', 'Requests sent again: their process never got them', '{message}'),
    dropped: counter('happen.transport.dropped', 'Messages dropped by validation, by kind', '{message}'),
  }
}

/** Reports the open transports' counts, summed by system (one process has one connection as a rule). */
function observeTransports(observer, instruments) {
  const bySystem = new Map()
  for (const meter of transportMeters) {
    let sum = bySystem.get(meter.system)
    if (sum === undefined) bySystem.set(meter.system, (sum = { ...TOTALS, dropped: new Map() }))
    for (const name of Object.keys(TOTALS)) sum[name] += meter.count(name)
    for (const [kind, n] of Object.entries(meter.transport.drops.counts().byKind))
      sum.dropped.set(kind, (sum.dropped.get(kind) ?? 0) + n)
  }
  for (const [system, sum] of bySystem) {
    const attributes = { 'messaging.system': system }
    for (const name of Object.keys(TOTALS)) observer.observe(instruments[name], sum[name], attributes)
    for (const [kind, n] of sum.dropped)
      observer.observe(instruments.dropped, n, { 'messaging.system': system, 'happen.drop.kind': kind })
  }
}

const TOTALS = { sentMessages: 0, consumedMessages: 0, sentBytes: 0, consumedBytes: 0, reconnections: 0, resends: 0 }

/**
 * What one transport (`transport.type`: the messaging system) sent and received while a
 * provider was registered; its reconnections and drops are read from the transport itself.
 * null from createTransportMeter when the runtime has no metrics.
 */
class TransportMeter {
  constructor(transport) {
    this.transport = transport
    this.system = transport.type
    this.sentMessages = 0
    this.sentBytes = 0
    this.consumedMessages = 0
    this.consumedBytes = 0
    this.resends = 0
    transportMeters.add(this)
  }

  count(name) {
    return name === 'reconnections' ? this.transport.reconnections : this[name]
  }

  /** Messages left: `out` holds subject, reply, header, body for each. */
  sent(out) {
    if (current() === null) return
    this.sentMessages += out.length / 4
    for (let i = 2; i < out.length; i += 4) this.sentBytes += Buffer.byteLength(out[i]) + Buffer.byteLength(out[i + 1])
  }

  /** Entries arrived: kind, subject, reply, header, body for each; kinds r, f, q, p are messages. */
  consumed(entries) {
    if (current() === null) return
    for (let i = 0; i < entries.length; i += 5) {
      const kind = entries[i]
      if (kind !== 'r' && kind !== 'f' && kind !== 'q' && kind !== 'p') continue
      this.consumedMessages++
      this.consumedBytes += Buffer.byteLength(entries[i + 3]) + Buffer.byteLength(entries[i + 4])
    }
  }

  /** A request was sent again. */
  resent() {
    if (current() !== null) this.resends++
  }

  close() {
    transportMeters.delete(this)
  }
}

/**
 * Reports the queue depth of the worker threads a worker-threads transport started (its
 * `workers`: by place, { thread, waiting }) while it is open: null when the runtime has no
 * metrics, else what to close() with the transport.
 */
function watchWorkers(runtimeMetrics, transport) {
  if (runtimeMetrics === null) return null
  workerTransports.add(transport)
  return { close: () => workerTransports.delete(transport) }
}

/** The TransportMeter of a transport whose runtime has metrics (`runtimeMetrics`), else null. */
function createTransportMeter(runtimeMetrics, transport) {
  return runtimeMetrics === null ? null : new TransportMeter(transport)
}

/** The flows of one node for one event type: counts, failures by error type, durations waiting. */
class FlowRecord {
  constructor(recorder, node, type) {
    this.recorder = recorder
    this.attributes = { 'happen.node': node, 'happen.event.type': type }
    this.started = 0
    this.ended = 0
    /** By error type: { attributes, count }. */
    this.failures = new Map()
    this.ok = new Samples({ ...this.attributes, 'happen.outcome': 'ok' })
    this.error = new Samples({ ...this.attributes, 'happen.outcome': 'error' })
  }

  /** A flow that started at `startedAt` (performance.now() ms) gave its value. */
  done(startedAt) {
    this.ended++
    this.ok.add((performance.now() - startedAt) / 1000, this.recorder.duration)
  }

  /** A flow that started at `startedAt` failed with `error`. */
  failed(startedAt, error) {
    this.ended++
    this.error.add((performance.now() - startedAt) / 1000, this.recorder.duration)
    const errorType = errorTypeOf(error)
    const failure = this.failures.get(errorType)
    if (failure !== undefined) failure.count++
    else this.failures.set(errorType, { attributes: { ...this.attributes, 'error.type': errorType }, count: 1 })
  }
}

/** Values of one histogram's attribute set that wait for a collection (at most FLUSH_AT). */
class Samples {
  constructor(attributes) {
    this.attributes = attributes
    this.values = []
  }

  add(value, histogram) {
    this.values.push(value)
    if (this.values.length >= FLUSH_AT) this.flush(histogram)
  }

  flush(histogram) {
    const values = this.values
    if (values.length === 0) return
    // The root context: a sample is recorded away from its flow, and the SDK then skips
    // looking up the active one per sample.
    const root = api.ROOT_CONTEXT
    for (let i = 0; i < values.length; i++) histogram.record(values[i], this.attributes, root)
    values.length = 0
  }
}

/** What `error.type` says of a failure: a HappenError's code, an error's name, or `_OTHER`. */
function errorTypeOf(error) {
  if (error instanceof HappenError) return error.code
  if (error instanceof Error) return error.name
  return '_OTHER'
}

module.exports = { createMetrics, createTransportMeter, watchWorkers }
