// Causal-history memory per event held.
//
//   node bench/memory.mjs [--events N]      (also run by bench/index.mjs at the end)
//
// Spawns two fresh child processes with --expose-gc (you need not pass it):
//   * "history": initializeHappen({ historySize: N }), then N one-event 5-node
//     fan-outs + return(), so the history holds N events;
//   * "control": the very same workload with historySize: 1.
// Each child measures process.memoryUsage() after global.gc() before and after
// the fill (and after a second fill of N more events, to show memory is flat
// once the store is full). Native (Rust) memory shows in RSS, not in the V8
// heap; but RSS also grows when V8 merely commits more heap (heapTotal: young
// generation growth, not live data). So what the history holds is counted as
//   held = Δ(rss − heapTotal)  [native: Rust store, malloc]  + Δ heapUsed  [live JS]
// and the control run subtracts what the workload costs without a history
// (JIT code, allocator high-water marks):
//   bytes/event held = (held(history) − held(control)) / events held
// Raw RSS growth per event is reported beside it.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const SELF = fileURLToPath(import.meta.url)
const FANOUT = 5
const IN_FLIGHT = 50 // fan-outs in flight while filling (keeps the fill fast)
const WARMUP = 2_000
// A small, fixed young generation: otherwise V8 grows it during the fill and
// the committed-but-idle semi-space pages blur RSS by several MB.
const CHILD_FLAGS = (process.env.BENCH_MEMORY_FLAGS ?? '--max-semi-space-size=1').split(' ').filter(Boolean)

// ------------------------------------------------------------------ child

async function child(historySize, events) {
  const { initializeHappen } = await import('happen')
  const snap = () => {
    globalThis.gc()
    globalThis.gc()
    const m = process.memoryUsage()
    return {
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
    }
  }
  const rt = initializeHappen({ historySize })
  const nodes = rt.createNodeArray(Array.from({ length: FANOUT }, (_, i) => rt.createNode(`n${i}`)))
  nodes.on('update', (_e, ctx) => ({ ok: true, node: ctx.node.id }))
  const fill = async (n) => {
    for (let done = 0; done < n; done += IN_FLIGHT) {
      const k = Math.min(IN_FLIGHT, n - done)
      const ps = new Array(k)
      for (let i = 0; i < k; i++) ps[i] = nodes.send({ type: 'update', payload: { data: done + i } }).return()
      await Promise.all(ps)
    }
  }
  await fill(WARMUP) // JIT, allocator and runtime threads warm; held: min(H, WARMUP)
  const before = snap()
  const t0 = performance.now()
  await fill(events)
  const fillSeconds = (performance.now() - t0) / 1000
  const after = snap()
  await fill(events)
  const again = snap()
  await rt.shutdown()
  const shutdown = snap()
  return {
    historySize,
    events,
    fillSeconds,
    heldBefore: Math.min(historySize, WARMUP),
    heldAfter: Math.min(historySize, WARMUP + events),
    before,
    after,
    again,
    shutdown,
  }
}

// ------------------------------------------------------------------ parent

function runChild(historySize, events) {
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      ['--expose-gc', ...CHILD_FLAGS, SELF, '--child', String(historySize), String(events)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    let out = ''
    p.stdout.on('data', (d) => {
      out += d
    })
    const timer = setTimeout(() => {
      p.kill()
      reject(new Error(`memory child (historySize ${historySize}) timed out after 120 s`))
    }, 120_000)
    p.on('close', (code) => {
      clearTimeout(timer)
      const last = out.trim().split('\n').pop()
      try {
        const r = JSON.parse(last)
        if (r.error) reject(new Error(r.error))
        else resolve(r)
      } catch {
        reject(new Error(`memory child exited ${code} without a result: ${out.slice(-500)}`))
      }
    })
  })
}

const value = (m, key) =>
  key === 'native' ? m.rss - m.heapTotal : key === 'held' ? m.rss - m.heapTotal + m.heapUsed : m[key]
const delta = (r, key, a = 'before', b = 'after') => value(r[b], key) - value(r[a], key)

export async function runMemory({ events = 200_000 } = {}) {
  const started = performance.now()
  const history = await runChild(events, events)
  const control = await runChild(1, events)
  const held = history.heldAfter - history.heldBefore - (control.heldAfter - control.heldBefore)
  const per = (key) => (delta(history, key) - delta(control, key)) / held
  return {
    events,
    fanOut: FANOUT,
    held,
    // headline: native (RSS not committed to the V8 heap) + live V8 heap, control-subtracted
    bytesPerEvent: per('held'),
    nativePerEvent: per('native'),
    heapPerEvent: per('heapUsed'),
    rssPerEvent: per('rss'),
    externalPerEvent: per('external'),
    // growth per event during a second fill of N events with a full store (flat: ~0)
    flatPerEvent: delta(history, 'held', 'after', 'again') / events,
    flatRssPerEvent: delta(history, 'rss', 'after', 'again') / events,
    releasedOnShutdownRss: -delta(history, 'rss', 'again', 'shutdown'),
    fillEventsPerSec: events / history.fillSeconds,
    seconds: (performance.now() - started) / 1000,
    history,
    control,
  }
}

const mb = (b) => `${(b / 1048576).toFixed(1)} MB`
const bpe = (v) => `${Math.round(v)} B/event`

export function printMemory(m) {
  console.log('\ncausal history memory (bench/memory.mjs)')
  if (m.error) {
    console.log(`  failed: ${m.error}`)
    return
  }
  const h = m.history,
    c = m.control
  console.log(
    `  ${m.events.toLocaleString('en-US')} one-event ${m.fanOut}-node fan-outs; historySize ${m.events.toLocaleString('en-US')} vs control historySize 1 (fresh processes, after gc)`,
  )
  const run = (r) =>
    `RSS ${mb(r.before.rss)} -> ${mb(r.after.rss)}, heapTotal ${mb(r.before.heapTotal)} -> ${mb(r.after.heapTotal)}, heapUsed ${mb(r.before.heapUsed)} -> ${mb(r.after.heapUsed)}`
  console.log(`  history run: ${run(h)}`)
  console.log(`  control run: ${run(c)}`)
  console.log(
    `  per event held: ${bpe(m.bytesPerEvent)} = native (RSS - heapTotal) ${bpe(m.nativePerEvent)} + V8 heapUsed ${bpe(m.heapPerEvent)}; raw RSS ${bpe(m.rssPerEvent)}`,
  )
  console.log(
    `  store full, ${m.events.toLocaleString('en-US')} more events: ${bpe(m.flatPerEvent)} (flat = ~0; raw RSS ${bpe(m.flatRssPerEvent)}); shutdown() (runtime still referenced) released ${mb(m.releasedOnShutdownRss)} RSS`,
  )
  console.log(
    `  fill rate ${Math.round(m.fillEventsPerSec).toLocaleString('en-US')} fan-outs/s; ${m.seconds.toFixed(1)} s`,
  )
}

// ------------------------------------------------------------------ entry

if (process.argv[1] === SELF) {
  const argv = process.argv.slice(2)
  if (argv[0] === '--child') {
    if (typeof globalThis.gc !== 'function') {
      console.log(JSON.stringify({ error: 'run with --expose-gc' }))
    } else {
      try {
        console.log(JSON.stringify(await child(Number(argv[1]), Number(argv[2]))))
      } catch (err) {
        console.log(JSON.stringify({ error: `${err?.name}: ${err?.message}` }))
      }
    }
    // do not let a stray handle keep the child alive
    setTimeout(() => process.exit(0), 1000).unref()
  } else {
    const i = argv.indexOf('--events')
    const m = await runMemory({ events: i >= 0 ? Number(argv[i + 1]) : 200_000 })
    printMemory(m)
    if (argv.includes('--json')) console.log(JSON.stringify(m))
  }
}
