#!/usr/bin/env node
// `npm run soak` (node --expose-gc scripts/soak.mjs): 1,000,000 fan-outs to 5 nodes and
// 10,000 batches of 100 events, with the causal history at its default size (10,000 events).
// Prints heap and RSS after a full GC every 100,000 fan-outs, and exits non-zero when the heap
// grew by 8 MB or more after warm-up (the first 100,000).
//
//   SOAK_FANOUTS=200000 npm run soak    a shorter run (batches scale along: one per 100 fan-outs)
import { initializeHappen } from '../index.js'

const FANOUTS = Number(process.env.SOAK_FANOUTS) || 1_000_000
const REPORT_EVERY = 100_000
const BATCH_EVERY = 100 // one batch of 100 events per 100 fan-outs: 10,000 batches
const BATCH_SIZE = 100
const LIMIT_MB = 8

if (typeof global.gc !== 'function') {
  console.error('soak: run with --expose-gc (npm run soak does)')
  process.exit(2)
}

const happen = initializeHappen()
const nodes = happen.createNodeArray(['api', 'db', 'cache', 'queue', 'audit'].map((id) => happen.createNode(id)))
const [api, db] = nodes.nodes

// What real handlers do: most return at once, some continue with a next step, some await,
// a few fail, and one node handles batches.
function record(event, context) {
  context.seen = (context.seen || 0) + 1
  return context.node.id
}
nodes.on('soak.tick', (event, context) => {
  const n = event.payload.n
  if (context.node.id === 'db' && n % 10 === 0) return record
  if (context.node.id === 'cache' && n % 50 === 0) return Promise.resolve(n)
  if (context.node.id === 'audit' && n % 1000 === 0) throw new Error(`audit refused ${n}`)
  return n
})
db.on('soak.metric', (events) => (Array.isArray(events) ? events.length : 1))
api.on('soak.metric', (events) => events.reduce((sum, e) => sum + e.payload.v, 0))

const batch = Array.from({ length: BATCH_SIZE }, (_, v) => ({ type: 'soak.metric', payload: { v } }))

const settle = () => new Promise((resolve) => setImmediate(resolve))
async function measure() {
  for (let i = 0; i < 4; i++) {
    global.gc()
    await settle()
  }
  const { heapUsed, rss } = process.memoryUsage()
  return { heapUsed, rss }
}
const mb = (bytes) => (bytes / 1024 / 1024).toFixed(1)

const samples = []
const started = Date.now()
let failures = 0
let batches = 0

async function report(done) {
  const m = await measure()
  samples.push({ done, ...m })
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  console.log(
    `soak: ${String(done).padStart(9)} fan-outs, ${String(batches).padStart(6)} batches  ` +
      `heap ${mb(m.heapUsed).padStart(6)} MB  rss ${mb(m.rss).padStart(6)} MB  (${seconds} s)`,
  )
}

await report(0)
for (let n = 1; n <= FANOUTS; n++) {
  const result = await nodes.send({ type: 'soak.tick', payload: { n } })
  if (n % 1000 === 0) {
    const settled = await result.return({ settled: true })
    if (settled.audit.status === 'rejected') failures++
    if (n % 10_000 === 0 && !happen.trace(result.id)) throw new Error('the history lost the latest event')
  } else {
    const value = await result.return()
    if (value.api !== n) throw new Error(`wrong result ${JSON.stringify(value)}`)
  }
  if (n % BATCH_EVERY === 0) {
    const results = await db.send([api, db], batch).return()
    if (results.db !== BATCH_SIZE) throw new Error(`wrong batch result ${JSON.stringify(results)}`)
    batches++
  }
  if (n % REPORT_EVERY === 0) await report(n)
}
await happen.shutdown()

const warm = samples.find((s) => s.done === REPORT_EVERY) || samples[0]
const after = samples.filter((s) => s.done >= warm.done)
const growth = Math.max(...after.map((s) => s.heapUsed)) - warm.heapUsed
const rssGrowth = Math.max(...after.map((s) => s.rss)) - warm.rss
const middle = samples[Math.floor(samples.length / 2)]
const end = samples[samples.length - 1]
console.log(
  `soak: ${FANOUTS} fan-outs to 5 nodes (${failures} with a failing node), ${batches} batches of ${BATCH_SIZE}, ` +
    `${((Date.now() - started) / 1000).toFixed(1)} s`,
)
console.log(
  `soak: heap start ${mb(samples[0].heapUsed)} / warm ${mb(warm.heapUsed)} / middle ${mb(middle.heapUsed)} / end ${mb(end.heapUsed)} MB; ` +
    `rss start ${mb(samples[0].rss)} / warm ${mb(warm.rss)} / middle ${mb(middle.rss)} / end ${mb(end.rss)} MB`,
)
console.log(`soak: heap growth after warm-up ${mb(growth)} MB (limit ${LIMIT_MB} MB), rss growth ${mb(rssGrowth)} MB`)
if (growth >= LIMIT_MB * 1024 * 1024) {
  console.error(`soak: FAILED: the heap grew by ${mb(growth)} MB after warm-up`)
  process.exit(1)
}
console.log('soak: passed')
