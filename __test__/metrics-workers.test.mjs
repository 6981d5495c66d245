// Metrics and worker threads (issue 25): the queue depth of each thread a runtime started, and
// flows counted in the thread that runs them, with the provider registered there; real threads.
import { metrics } from '@opentelemetry/api'
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}
const metered = new URL('./fixtures/workers/metered.mjs', import.meta.url)

let reader
let provider
const runtimes = []
beforeEach(() => {
  metrics.disable()
  reader = new TestReader()
  provider = new MeterProvider({ readers: [reader] })
  metrics.setGlobalMeterProvider(provider)
})
afterEach(async () => {
  while (runtimes.length) await runtimes.pop().shutdown()
  await provider.shutdown()
  metrics.disable()
})

/** The data points of `name` in one collection of this thread's provider. */
async function points(name) {
  const { resourceMetrics, errors } = await reader.collect()
  expect(errors).toEqual([])
  return (
    resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name)?.dataPoints ?? []
  )
}
const depths = async () =>
  (await points('happen.worker.queue.depth')).map((p) => [p.attributes['happen.worker.thread'], p.value])

describe('metrics and worker threads', () => {
  it("a thread's queue depth is the sends waiting for its answer; its flows are counted in the thread", async () => {
    const rt = initializeHappen()
    runtimes.push(rt)
    const worker = await rt.worker(metered, { workerData: { prefix: 'q' } })
    const main = rt.createNode('main')
    // No send yet: no instrument yet either.
    expect(await depths()).toEqual([])

    const held = [1, 2, 3].map((n) => main.send('q-slow', { type: 'hold', payload: n }).return())
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(await depths()).toEqual([[worker.threadId, 3]])

    expect(await main.send('q-gate', { type: 'release' }).return()).toBe(true)
    expect(await Promise.all(held)).toEqual([1, 2, 3])
    expect(await depths()).toEqual([[worker.threadId, 0]])

    // The thread counted its own flows (three held, one gate, the question itself: not yet
    // ended when it collects, but started); this thread counted none of them.
    expect(await main.send('q-delivered', { type: 'delivered' }).return()).toEqual({
      'q-slow': 3,
      'q-gate': 1,
      'q-delivered': 1,
    })
    expect((await points('happen.flow.delivered')).map((p) => p.attributes['happen.node'])).toEqual([])
  })

  it('a worker started by a runtime with metrics: false counts nothing, though it registers a provider', async () => {
    const rt = initializeHappen({ metrics: false })
    runtimes.push(rt)
    await rt.worker(metered, { workerData: { prefix: 'off' } })
    const main = rt.createNode('main')
    expect(await main.send('off-gate', { type: 'release' }).return()).toBe(true)
    expect(await main.send('off-delivered', { type: 'delivered' }).return()).toEqual({})
    expect(await depths()).toEqual([])
  })
})
