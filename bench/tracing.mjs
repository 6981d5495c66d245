// The cost of tracing on S1 (one event fanned out to 5 nodes + return()), as ratios against
// `tracing: false` measured in the same run:
//   tracing: false               the send path with tracing off (one null check per hook)
//   no provider                  the default with @opentelemetry/api installed, no provider registered
//   provider, sampling all       a BasicTracerProvider with AlwaysOnSampler and a span processor
//                                that drops what it is given (the cost of making the spans, not of
//                                exporting them); an AsyncLocalStorage context manager
//   SDK alone                    the same six spans made by the SDK without happen
//   baseline (BENCH_BASELINE)    optional: happen from another checkout (e.g. main, before
//                                tracing existed), to compare `no provider` with it
// Cases run interleaved, in rounds; each figure is the median of the rounds' per-op times.
//   node bench/tracing.mjs [--rounds 15] [--ops 20000]
// Run only under `flock /tmp/happen-bench.lock` (two shared cores).
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { AlwaysOnSampler, BasicTracerProvider } from '@opentelemetry/sdk-trace-base'
import { initializeHappen } from 'happen'

const arg = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`)
  return at < 0 ? fallback : Number(process.argv[at + 1])
}
const ROUNDS = arg('rounds', 15)
const OPS = arg('ops', 20_000)

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
let spansMade = 0
const dropping = {
  onStart() {},
  onEnd() {
    spansMade++
  },
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
}
const provider = new BasicTracerProvider({ sampler: new AlwaysOnSampler(), spanProcessors: [dropping] })

function fanOut(init, config) {
  const rt = init(config)
  const nodes = rt.createNodeArray(['n1', 'n2', 'n3', 'n4', 'n5'].map((id) => rt.createNode(id)))
  nodes.on('update', (_event, ctx) => ({ ok: true, node: ctx.node.id }))
  return { rt, op: () => nodes.send({ type: 'update', payload: { data: 1 } }).return() }
}

const cases = [
  { name: 'tracing: false', ...fanOut(initializeHappen, { tracing: false }), provider: false },
  { name: 'no provider', ...fanOut(initializeHappen), provider: false },
  { name: 'provider, sampling all', ...fanOut(initializeHappen), provider: true },
]
// What the SDK alone spends on the spans one traced S1 send makes (a send span, five flow
// spans with their attributes, one event each, each flow entered as the active context):
// the part of the traced cost that is OpenTelemetry's, not happen's.
const sdkTracer = provider.getTracer('bench')
cases.push({
  name: 'SDK alone: the same 6 spans',
  rt: { shutdown: () => {} },
  provider: true,
  op: async () => {
    const send = sdkTracer.startSpan('happen.send update', { attributes: { 'happen.event.id': 'x-1' } })
    send.end()
    const parent = trace.setSpan(context.active(), send)
    for (let i = 0; i < 5; i++) {
      const span = sdkTracer.startSpan(
        'happen.process update',
        { attributes: { 'happen.event.id': 'x-1', 'happen.correlation_id': 'x-1', 'happen.node': 'n' } },
        parent,
      )
      span.addEvent("on 'update'")
      context.with(trace.setSpan(parent, span), () => {})
      span.end()
    }
  },
})
if (process.env.BENCH_BASELINE) {
  const other = await import(pathToFileURL(path.resolve(process.env.BENCH_BASELINE, 'index.mjs')).href)
  cases.push({ name: `baseline (${process.env.BENCH_BASELINE})`, ...fanOut(other.initializeHappen), provider: false })
}

async function run(c, ops) {
  if (c.provider) trace.setGlobalTracerProvider(provider)
  else trace.disable()
  const start = performance.now()
  for (let i = 0; i < ops; i++) await c.op()
  const time = performance.now() - start
  trace.disable()
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
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1]
}
const spread = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return [s[Math.floor(s.length * 0.25)], s[Math.floor(s.length * 0.75)]]
}
const base = median(times[0])
console.log(`S1 fan-out 5 + return(), node ${process.version}, ${ROUNDS} rounds x ${OPS} ops`)
console.log('case                          ratio vs tracing:false   (IQR of the ratio)')
for (let i = 0; i < cases.length; i++) {
  const [lo, hi] = spread(times[i])
  console.log(
    `${cases[i].name.padEnd(30)}${(median(times[i]) / base).toFixed(3).padStart(8)}   (${(lo / base).toFixed(3)}..${(hi / base).toFixed(3)})`,
  )
}
const expected = (ROUNDS + 1) * OPS * 12
if (spansMade !== expected) throw new Error(`expected ${expected} spans with the provider, made ${spansMade}`)
console.log(`spans made with a provider: ${spansMade} (6 per op: one send span, five flow spans)`)
for (const c of cases) await c.rt.shutdown()
