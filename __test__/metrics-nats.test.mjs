// Metrics of the NATS transport (issue 25): messages and bytes each way, reconnections after a
// server restart, a request sent again, and messages dropped by validation, read through the real SDK, on a
// nats-server of the test's own.
import { metrics } from '@opentelemetry/api'
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { connect } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'
import { NATS_URL, freePort, hasNatsServer, sleep, startServer, stop, stopAll } from './nats/harness.mjs'

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

/** Instrument name -> data points of one collection. */
async function collect(reader) {
  const { resourceMetrics, errors } = await reader.collect()
  expect(errors).toEqual([])
  const byName = {}
  for (const scope of resourceMetrics.scopeMetrics)
    for (const metric of scope.metrics) byName[metric.descriptor.name] = metric.dataPoints
  return byName
}

/** The value for `attributes` exactly, or undefined when no data point has them. */
const valueAt = (points, attributes) =>
  (points ?? []).find((p) => JSON.stringify(p.attributes) === JSON.stringify(attributes))?.value

/** Collects until `check(seen)` holds, or fails after `ms`. */
async function eventually(reader, check, ms = 10_000) {
  const end = Date.now() + ms
  for (;;) {
    const seen = await collect(reader)
    if (check(seen)) return seen
    if (Date.now() > end) throw new Error(`not reached in time: ${JSON.stringify(seen)}`)
    await sleep(50)
  }
}

const NATS = { 'messaging.system': 'nats' }

describe.skipIf(!NATS_URL || !hasNatsServer)('metrics of the NATS transport', () => {
  let port
  let server
  let reader
  let provider
  const runtimes = []

  beforeAll(async () => {
    port = await freePort()
    server = await startServer(port)
    reader = new TestReader()
    provider = new MeterProvider({ readers: [reader] })
    metrics.disable()
    metrics.setGlobalMeterProvider(provider)
  })
  afterAll(async () => {
    for (const rt of runtimes) await rt.shutdown()
    await provider.shutdown()
    metrics.disable()
    await stopAll()
  })

  it('counts messages and bytes both ways, reconnections after a restart, drops by kind and a request sent again', async () => {
    const transport = { type: 'nats', servers: [`nats://127.0.0.1:${port}`], heartbeat: 200 }
    const host = await initializeHappen({ transport })
    const sender = await initializeHappen({ transport })
    runtimes.push(host, sender)
    host.createNode('svc').on('ask', (event) => event.payload * 2)
    await sleep(300) // presence reaches the sender
    expect(await sender.createNode('client').send('svc', { type: 'ask', payload: 21 }).return()).toBe(42)

    let seen = await collect(reader)
    const sent = valueAt(seen['messaging.client.sent.messages'], NATS)
    const consumed = valueAt(seen['messaging.client.consumed.messages'], NATS)
    // At least the request and its reply each way, and every message has some bytes.
    expect(sent).toBeGreaterThanOrEqual(2)
    expect(consumed).toBeGreaterThanOrEqual(2)
    expect(valueAt(seen['happen.transport.sent.bytes'], NATS)).toBeGreaterThan(sent)
    expect(valueAt(seen['happen.transport.consumed.bytes'], NATS)).toBeGreaterThan(consumed)
    expect(valueAt(seen['happen.transport.reconnections'], NATS)).toBe(0)
    // The flow ran on the host's node, counted once.
    expect(valueAt(seen['happen.flow.delivered'], { 'happen.node': 'svc', 'happen.event.type': 'ask' })).toBe(1)

    // A stranger's malformed presence message: both runtimes listen to presence, both drop it.
    const stranger = await connect({ servers: `nats://127.0.0.1:${port}` })
    stranger.publish('happen.presence', new TextEncoder().encode('not json'))
    await stranger.flush()
    await stranger.close()
    seen = await eventually(
      reader,
      (s) => valueAt(s['happen.transport.dropped'], { ...NATS, 'happen.drop.kind': 'presence' }) === 2,
    )

    // The server restarts: both connections are made again.
    await stop(server)
    server = await startServer(port)
    seen = await eventually(reader, (s) => valueAt(s['happen.transport.reconnections'], NATS) === 2, 15_000)
    expect(await sender.node('client').send('svc', { type: 'ask', payload: 1 }).return({ timeout: 10_000 })).toBe(2)
    let after = await collect(reader)
    expect(valueAt(after['messaging.client.sent.messages'], NATS)).toBeGreaterThan(sent)
    expect(valueAt(after['happen.transport.resends'], NATS)).toBe(0)

    // One request lost on its way (its frame never leaves, as in a write buffer a dying
    // connection took along): the host, alive, says it never got it, and it is sent again.
    const t = sender._transport
    const frame = t._frame
    t._frame = (hostRoute, id, waiting) => {
      t._frame = frame
      waiting.host = hostRoute
    }
    expect(await sender.node('client').send('svc', { type: 'ask', payload: 5 }).return({ timeout: 10_000 })).toBe(10)
    after = await collect(reader)
    expect(valueAt(after['happen.transport.resends'], NATS)).toBe(1)
  })
})
