// The cost of metrics on S1 (one event fanned out to 5 nodes + return()), as ratios against
// `metrics: false` measured in the same run:
//   metrics: false               the send path with metrics off (one null check per hook)
//   no provider                  the default with @opentelemetry/api installed, no meter provider
//   provider, default aggregation a MeterProvider with a reader (the SDK's default aggregation:
//                                sums and explicit-bucket histograms), collected once per round
//   baseline (BENCH_BASELINE)    optional: happen from another checkout (e.g. main, before
//                                metrics existed), to compare `no provider` with it
// Cases run interleaved, in rounds; each figure is the median of the rounds' per-op times.
//   node --expose-gc bench/metrics.mjs [--rounds 11] [--ops 20000] [--without-provider]
// --without-provider leaves the provider case out: the cases of one checkout share their
// compiled code, which the provider's paths would make less specialised than `today`'s.
// Run only under `flock /tmp/happen-bench.lock` (two shared cores).
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { metrics } from '@opentelemetry/api'
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics'
import { initializeHappen } from 'happen'

const arg = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`)
  return at < 0 ? fallback : Number(process.argv[at + 1])
}
const ROUNDS = arg('rounds', 11)
const OPS = arg('ops', 20_000)

class Reader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}
const reader = new Reader()
const provider = new MeterProvider({ readers: [reader] })

function fanOut(init, config) {
  const rt = init(config)
  const nodes = rt.createNodeArray(['n1', 'n2', 'n3', 'n4', 'n5'].map((id) => rt.createNode(id)))
  nodes.on('update', (_event, ctx) => ({ ok: true, node: ctx.node.id }))
  return { rt, op: () => nodes.send({ type: 'update', payload: { data: 1 } }).return() }
}

const cases = [
  { name: 'metrics: false', ...fanOut(initializeHappen, { metrics: false }), provider: false },
  { name: 'no provider', ...fanOut(initializeHappen), provider: false },
]
const withProvider = !process.argv.includes('--without-provider')
if (withProvider) cases.push({ name: 'provider, default aggregation', ...fanOut(initializeHappen), provider: true })
if (process.env.BENCH_BASELINE) {
  const other = await import(pathToFileURL(path.resolve(process.env.BENCH_BASELINE, 'index.mjs')).href)
  cases.push({ name: `baseline (${process.env.BENCH_BASELINE})`, ...fanOut(other.initializeHappen), provider: false })
}

let delivered = 0
async function run(c, ops) {
  if (c.provider) metrics.setGlobalMeterProvider(provider)
  else metrics.disable()
  globalThis.gc?.()
  const start = performance.now()
  for (let i = 0; i < ops; i++) await c.op()
  const time = performance.now() - start
  if (c.provider) {
    const { resourceMetrics } = await reader.collect()
    const points = resourceMetrics.scopeMetrics
      .flatMap((s) => s.metrics)
      .find((m) => m.descriptor.name === 'happen.flow.delivered')
    delivered = points.dataPoints.reduce((sum, p) => sum + p.value, 0)
  }
  metrics.disable()
  return (time * 1e6) / ops // ns per op
}

for (const c of cases) await run(c, OPS) // warm-up
const times = cases.map(() => [])
for (let round = 0; round < ROUNDS; round++) {
  // Rotate the order each round so no case always runs right after the same one.
  for (let k = 0; k < cases.length; k++) {
    const i = (k + round) % cases.length
    times[i].push(await run(cases[i], OPS))
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
const spread = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return [s[Math.floor(s.length * 0.25)], s[Math.floor(s.length * 0.75)]]
}
const base = median(times[0])
console.log(`S1 fan-out 5 + return(), node ${process.version}, ${ROUNDS} rounds x ${OPS} ops`)
console.log(`metrics: false ${(base / 1000).toFixed(2)} µs/op`)
console.log('case                          ratio vs metrics:false   (IQR of the ratio)')
for (let i = 0; i < cases.length; i++) {
  const [lo, hi] = spread(times[i])
  console.log(
    `${cases[i].name.padEnd(30)}${(median(times[i]) / base).toFixed(3).padStart(8)}   (${(lo / base).toFixed(3)}..${(hi / base).toFixed(3)})`,
  )
}
const expected = (ROUNDS + 1) * OPS * 5
if (withProvider && delivered !== expected)
  throw new Error(`expected ${expected} flows counted with the provider, counted ${delivered}`)
if (withProvider) console.log(`flows counted with a provider: ${delivered} (5 per op)`)
for (const c of cases) await c.rt.shutdown()
