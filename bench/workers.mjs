// Worker-thread nodes against their peers (issue 9). Run: `npm run bench:workers`, only under
// the shared lock on a shared machine: `flock /tmp/happen-bench.lock npm run bench:workers`.
//
// (a) fan-out to 4 nodes whose handlers each spin 2 ms of CPU, awaited with return():
//     4 main-thread nodes, vs the same 4 nodes in 2 workers (2 each), vs Piscina (2 threads)
//     running the same function 4 times with Promise.all.
// (b) one event to one worker node and back (a trivial handler), vs a raw postMessage round
//     trip to a worker, vs piscina.run of a trivial task.
// Every case runs in rounds (A..Z, Z..A, ...); each round's median time per operation is
// taken, and the figure is the median over rounds, so one noisy round spoils nothing. The
// figures are ratios of cases measured in this one run; absolute times are for orientation.
import os from 'node:os'
import { Worker } from 'node:worker_threads'
import { fileURLToPath } from 'node:url'
import Piscina from 'piscina'
import { initializeHappen } from 'happen'
import { spin } from './workers/spin.mjs'

const QUICK = process.argv.includes('--quick')
const ROUNDS = QUICK ? 3 : 7
const SPIN_MS = 2
const here = (file) => new URL(`./workers/${file}`, import.meta.url)

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Median ms per call of `op` over `count` calls after `warm` unmeasured ones. */
async function sample(op, count, warm) {
  for (let i = 0; i < warm; i++) await op()
  const times = new Array(count)
  for (let i = 0; i < count; i++) {
    const start = performance.now()
    await op()
    times[i] = performance.now() - start
  }
  return median(times)
}

async function rounds(cases, count, warm) {
  const perCase = new Map(cases.map(([name]) => [name, []]))
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? cases : [...cases].reverse()
    for (const [name, op] of order) perCase.get(name).push(await sample(op, count, warm))
  }
  return new Map([...perCase].map(([name, times]) => [name, median(times)]))
}

async function main() {
  const cpus = os.cpus().length
  console.log(
    `happen worker-thread bench — node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus} CPU (${os.cpus()[0]?.model ?? '?'})${QUICK ? ', QUICK' : ''}`,
  )
  const load = os.loadavg()[0]
  if (load > 0.7)
    console.log(`warning: load average ${load.toFixed(2)} at start: other work on this machine skews the numbers.`)

  // Main-thread nodes.
  const local = initializeHappen()
  const localNodes = ['m1', 'm2', 'm3', 'm4'].map((id) => {
    const node = local.createNode(id)
    node.on('spin', (event) => spin(event.payload.ms))
    return node
  })
  const localArray = local.createNodeArray(localNodes)

  // The same nodes in 2 workers, 2 each; one more worker node for the round trip.
  const threaded = initializeHappen()
  await threaded.worker(here('nodes.mjs'), { workerData: { nodes: ['w1', 'w2'] } })
  await threaded.worker(here('nodes.mjs'), { workerData: { nodes: ['w3', 'w4', 'echo'] } })
  const threadedArray = threaded.createNodeArray(['w1', 'w2', 'w3', 'w4'].map((id) => threaded.node(id)))
  const echoNode = threaded.node('echo')

  const pool = new Piscina({ filename: fileURLToPath(here('piscina-task.mjs')), minThreads: 2, maxThreads: 2 })
  const echo = new Worker(here('echo.mjs'))
  let answer = null
  echo.on('message', (message) => answer(message))
  const postRoundTrip = (message) =>
    new Promise((resolve) => {
      answer = resolve
      echo.postMessage(message)
    })

  const spinEvent = () => ({ type: 'spin', payload: { ms: SPIN_MS } })
  const fanOut = await rounds(
    [
      ['main-thread nodes', () => localArray.send(spinEvent()).return()],
      ['happen, 4 nodes in 2 workers', () => threadedArray.send(spinEvent()).return()],
      ['piscina, Promise.all of 4 runs', () => Promise.all([0, 1, 2, 3].map(() => pool.run({ ms: SPIN_MS })))],
    ],
    QUICK ? 40 : 100,
    10,
  )

  const payload = { n: 1, text: 'hello' }
  const roundTrip = await rounds(
    [
      ['happen, one event to a worker node', () => echoNode.send({ type: 'echo', payload }).return()],
      ['raw postMessage round trip', () => postRoundTrip(payload)],
      ['piscina.run', () => pool.run({ echo: payload })],
    ],
    QUICK ? 500 : 2000,
    200,
  )

  const print = (title, results, unit) => {
    console.log(`\n${title}`)
    for (const [name, ms] of results) console.log(`  ${name.padEnd(40)} ${unit(ms)}`)
  }
  print(
    `(a) fan-out to 4 nodes, each spinning ${SPIN_MS} ms (median ms per fan-out)`,
    fanOut,
    (ms) => `${ms.toFixed(2)} ms`,
  )
  print(
    '(b) one event to one worker and back (median µs per round trip)',
    roundTrip,
    (ms) => `${(ms * 1000).toFixed(1)} µs`,
  )

  const mainMs = fanOut.get('main-thread nodes')
  const workersMs = fanOut.get('happen, 4 nodes in 2 workers')
  const piscinaMs = fanOut.get('piscina, Promise.all of 4 runs')
  const tripMs = roundTrip.get('happen, one event to a worker node')
  const poolTripMs = roundTrip.get('piscina.run')
  const rawTripMs = roundTrip.get('raw postMessage round trip')
  const targets = [
    ['(a) workers vs main-thread nodes: speed-up >= 1.7x', mainMs / workersMs, (r) => r >= 1.7, 'x faster'],
    ['(a) workers vs piscina: time <= 1.2x', workersMs / piscinaMs, (r) => r <= 1.2, 'x piscina'],
    ['(b) round trip vs piscina.run: time <= 1.5x', tripMs / poolTripMs, (r) => r <= 1.5, 'x piscina'],
    ['(b) round trip vs raw postMessage (no target)', tripMs / rawTripMs, () => true, 'x postMessage'],
  ]
  console.log(`\ntargets (${cpus} CPU; ratios of cases measured in this run)`)
  for (const [name, ratio, met, unit] of targets)
    console.log(`  ${name.padEnd(50)} ${ratio.toFixed(2)}${unit}  ${met(ratio) ? 'met' : 'NOT MET'}`)

  await Promise.all([local.shutdown(), threaded.shutdown(), pool.destroy(), echo.terminate()])
}

await main()
