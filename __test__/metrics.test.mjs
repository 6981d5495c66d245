// Metrics with OpenTelemetry (issue 25): every instrument read through the real SDK (a
// MeterProvider and a MetricReader the test collects from), with exact counts.
import { metrics } from '@opentelemetry/api'
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { HappenError, initializeHappen } from 'happen'
import { deferred, thrown } from './helpers.mjs'

/** A reader the test collects from when it wants (no timer, no exporter). */
class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

let reader
let provider
const register = () => {
  reader = new TestReader()
  provider = new MeterProvider({ readers: [reader] })
  metrics.setGlobalMeterProvider(provider)
}

/** What a collection holds: instrument name -> its data points. */
async function collect() {
  const { resourceMetrics, errors } = await reader.collect()
  expect(errors).toEqual([])
  const byName = {}
  for (const scope of resourceMetrics.scopeMetrics)
    for (const metric of scope.metrics) byName[metric.descriptor.name] = metric.dataPoints
  return byName
}

/** The value of the one data point of `points` whose attributes are exactly `attributes`. */
function at(points, attributes) {
  const found = (points ?? []).filter(
    (p) => JSON.stringify(sorted(p.attributes)) === JSON.stringify(sorted(attributes)),
  )
  expect(found, JSON.stringify(attributes)).toHaveLength(1)
  return found[0].value
}
const sorted = (o) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)))

const runtimes = []
function runtime(config) {
  const rt = initializeHappen(config)
  runtimes.push(rt)
  return rt
}
beforeEach(() => {
  metrics.disable()
})
afterEach(async () => {
  while (runtimes.length) await runtimes.pop().shutdown()
  if (provider !== undefined) await provider.shutdown()
  provider = undefined
})
afterAll(() => metrics.disable())

class PaymentDeclined extends Error {
  name = 'PaymentDeclined'
}

describe('metrics with OpenTelemetry', () => {
  it('a fan-out to 3 nodes with one failing, a flow with an await and a batch: every instrument counts exactly', async () => {
    register()
    const rt = runtime()
    const nodes = ['a', 'b', 'c'].map((id) => rt.createNode(id))
    const resume = deferred()
    rt.createNodeArray(nodes).on('order', async function route(event, ctx) {
      if (ctx.node.id === 'b') await resume.promise
      if (ctx.node.id === 'c') throw new PaymentDeclined('card refused')
      return 'ok'
    })
    nodes[0].on('tick', () => 'ticked')

    const sent = rt.createNodeArray(nodes).send({ type: 'order', payload: { secret: 'payload' } })
    await new Promise((resolve) => setTimeout(resolve, 5))
    // b awaits still: one flow in flight, on b.
    let seen = await collect()
    expect(at(seen['happen.flow.active'], { 'happen.node': 'b' })).toBe(1)
    expect(at(seen['happen.flow.active'], { 'happen.node': 'a' })).toBe(0)
    resume.resolve()
    const settled = await sent.return({ settled: true })
    expect(settled.c.status).toBe('rejected')
    await rt.createNodeArray([nodes[0]]).send([
      { type: 'tick', payload: 1 },
      { type: 'tick', payload: 2 },
      { type: 'tick', payload: 3 },
    ])

    seen = await collect()
    expect(seen['happen.event.sent']).toHaveLength(2)
    expect(at(seen['happen.event.sent'], { 'happen.event.type': 'order' })).toBe(1)
    expect(at(seen['happen.event.sent'], { 'happen.event.type': 'tick' })).toBe(3)

    expect(seen['happen.flow.delivered']).toHaveLength(4)
    for (const node of ['a', 'b', 'c'])
      expect(at(seen['happen.flow.delivered'], { 'happen.node': node, 'happen.event.type': 'order' })).toBe(1)
    expect(at(seen['happen.flow.delivered'], { 'happen.node': 'a', 'happen.event.type': 'tick' })).toBe(1)

    expect(seen['happen.flow.failures']).toHaveLength(1)
    expect(
      at(seen['happen.flow.failures'], {
        'happen.node': 'c',
        'happen.event.type': 'order',
        'error.type': 'PaymentDeclined',
      }),
    ).toBe(1)

    for (const node of ['a', 'b', 'c']) expect(at(seen['happen.flow.active'], { 'happen.node': node })).toBe(0)

    const duration = seen['happen.flow.duration']
    expect(duration).toHaveLength(4)
    const ok = (node, type = 'order') =>
      at(duration, { 'happen.node': node, 'happen.event.type': type, 'happen.outcome': 'ok' })
    expect(ok('a').count).toBe(1)
    expect(ok('a', 'tick').count).toBe(1)
    expect(ok('b').count).toBe(1)
    // b waited at least the 5 ms before it was resumed; a did not.
    expect(ok('b').sum).toBeGreaterThanOrEqual(0.004)
    expect(ok('b').sum).toBeGreaterThan(ok('a').sum)
    expect(at(duration, { 'happen.node': 'c', 'happen.event.type': 'order', 'happen.outcome': 'error' }).count).toBe(1)

    expect(seen['happen.batch.size']).toHaveLength(1)
    const batch = at(seen['happen.batch.size'], { 'happen.event.type': 'tick' })
    expect([batch.count, batch.sum]).toEqual([1, 3])

    // No attribute holds a payload or an event id.
    const text = JSON.stringify(Object.values(seen).flatMap((points) => points.map((p) => p.attributes)))
    expect(text).not.toContain('payload')
    expect(text).not.toContain((await sent).id)
  })

  it('counts are cumulative across collections, and a mixed batch counts each type', async () => {
    register()
    const rt = runtime()
    const a = rt.createNode('a')
    a.on('*', () => null)
    await rt.createNodeArray([a]).send({ type: 'ping', payload: 1 })
    expect(at((await collect())['happen.event.sent'], { 'happen.event.type': 'ping' })).toBe(1)
    await rt.createNodeArray([a]).send([
      { type: 'ping', payload: 1 },
      { type: 'pong', payload: 2 },
      { type: 'ping', payload: 3 },
    ])
    const seen = await collect()
    expect(at(seen['happen.event.sent'], { 'happen.event.type': 'ping' })).toBe(3)
    expect(at(seen['happen.event.sent'], { 'happen.event.type': 'pong' })).toBe(1)
    expect(at(seen['happen.batch.size'], { 'happen.event.type': 'ping, pong' }).sum).toBe(3)
    expect(at(seen['happen.flow.delivered'], { 'happen.node': 'a', 'happen.event.type': 'ping' })).toBe(1)
  })

  it("error.type is a HappenError's code, an error's name, or _OTHER for a thrown non-error", async () => {
    register()
    const rt = runtime()
    const nodes = ['x', 'y', 'z'].map((id) => rt.createNode(id))
    rt.createNodeArray(nodes).on('job', (event, ctx) => {
      if (ctx.node.id === 'x') throw new HappenError('TIMEOUT', 'took too long')
      if (ctx.node.id === 'y') throw new TypeError('bad')
      throw 'a string'
    })
    await rt.createNodeArray(nodes).send({ type: 'job', payload: null }).return({ settled: true })
    const failures = (await collect())['happen.flow.failures']
    expect(failures).toHaveLength(3)
    expect(at(failures, { 'happen.node': 'x', 'happen.event.type': 'job', 'error.type': 'TIMEOUT' })).toBe(1)
    expect(at(failures, { 'happen.node': 'y', 'happen.event.type': 'job', 'error.type': 'TypeError' })).toBe(1)
    expect(at(failures, { 'happen.node': 'z', 'happen.event.type': 'job', 'error.type': '_OTHER' })).toBe(1)
  })

  it('durations past the pending bound are recorded at once, and none is lost', async () => {
    register()
    const rt = runtime()
    const a = rt.createNode('a')
    a.on('beat', () => null)
    const target = rt.createNodeArray([a])
    for (let i = 0; i < 10_000; i++) target.send({ type: 'beat', payload: i })
    const seen = await collect()
    expect(
      at(seen['happen.flow.duration'], { 'happen.node': 'a', 'happen.event.type': 'beat', 'happen.outcome': 'ok' })
        .count,
    ).toBe(10_000)
    expect(at(seen['happen.flow.delivered'], { 'happen.node': 'a', 'happen.event.type': 'beat' })).toBe(10_000)
  })

  it('initializeHappen({ metrics: false }) counts nothing even with a provider; a non-boolean is refused', async () => {
    register()
    const rt = runtime({ metrics: false })
    const a = rt.createNode('a')
    a.on('ping', () => {
      throw new Error('no')
    })
    await rt.createNodeArray([a]).send({ type: 'ping', payload: 1 }).return({ settled: true })
    expect(await collect()).toEqual({})
    expect(rt._metrics).toBeNull()

    const error = thrown(() => initializeHappen({ metrics: 'yes' }))
    expect(error.code).toBe('ERR_INVALID_ARG_TYPE')
    expect(error.message).toContain('config.metrics')
  })

  it('without a provider nothing is counted and no instrument is made; a provider registered later counts from the next send', async () => {
    const rt = runtime()
    const a = rt.createNode('a')
    a.on('ping', () => 'pong')
    const target = rt.createNodeArray([a])
    await target.send({ type: 'ping', payload: 1 })
    await target.send([{ type: 'ping', payload: 2 }])

    register()
    const made = []
    const getMeter = provider.getMeter.bind(provider)
    provider.getMeter = (...args) => (made.push(args[0]), getMeter(...args))
    expect(await collect()).toEqual({})
    await target.send({ type: 'ping', payload: 3 })
    await target.send({ type: 'ping', payload: 4 })
    // Instruments once per provider, not per send.
    expect(made).toEqual(['happen'])
    const seen = await collect()
    expect(at(seen['happen.event.sent'], { 'happen.event.type': 'ping' })).toBe(2)
    expect(at(seen['happen.flow.delivered'], { 'happen.node': 'a', 'happen.event.type': 'ping' })).toBe(2)
  })
})
