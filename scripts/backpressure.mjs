#!/usr/bin/env node
// `npm run soak:backpressure` (node --expose-gc scripts/backpressure.mjs): issue 21's burst.
// An awaiting producer sends 200,000 fan-outs to 2 nodes hosted in another process over NATS
// (`await nodes.send(…)`, each send's return() counted as it settles). Reports the sender's
// peak RSS, how many fan-outs were delivered (both nodes' results right), the receiver's event
// loop delay while it served (monitorEventLoopDelay p50 / p99 / max) and how soon it answered
// IPC pings from this process meanwhile (one every 100 ms). Exits non-zero when a target is
// missed: sender RSS ≤ 300 MB, everything delivered, receiver event loop delay p99 ≤ 100 ms.
//
//   --fanouts 200000      how many fan-outs
//   --max-in-flight N     the sender's maxInFlight (default: the transport's default)
//   --no-await            the producer does not await its sends (what such a caller costs)
//   --url nats://…        a running nats-server (else HAPPEN_NATS_URL, else one of its own)
//   --timeout 300         seconds before it gives up (and fails)
//
// A load test on this machine's loopback only; it stops by itself.
import { fork, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

const TARGET_RSS_MB = 300
const TARGET_LAG_P99_MS = 100
const NODE_IDS = ['bp-soak-a', 'bp-soak-b']

function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? process.argv[at + 1] : fallback
}
const mb = (bytes) => bytes / 1024 / 1024
const ms = (ns) => ns / 1e6

// ------------------------------------------------------------------------------------------
// The receiver (a child process): hosts the 2 nodes; reports its event loop delay over IPC.
// ------------------------------------------------------------------------------------------

async function receiver(url) {
  const { initializeHappen, createNodeArray } = await import('../index.mjs')
  const happen = await initializeHappen({ transport: { type: 'nats', servers: [url] } })
  const nodes = createNodeArray(NODE_IDS.map((id) => happen.createNode(id)))
  let served = 0
  nodes.on('soak.echo', (event) => {
    served++
    return event.payload
  })
  await happen.ready()
  const lag = monitorEventLoopDelay({ resolution: 10 })
  process.on('message', async (message) => {
    if (message.ping !== undefined) return process.send({ pong: message.ping })
    if (message.start) {
      lag.reset()
      lag.enable()
      served = 0
      return process.send({ started: true })
    }
    if (message.stop) {
      lag.disable()
      process.send({
        lag: { p50: ms(lag.percentile(50)), p99: ms(lag.percentile(99)), max: ms(lag.max) },
        served,
        rssMB: mb(process.memoryUsage().rss),
      })
      await happen.shutdown()
      process.exit(0)
    }
  })
  // The sender is gone (it ended, or crashed): so is this.
  process.on('disconnect', () => process.exit(0))
  process.send({ ready: true })
}

// ------------------------------------------------------------------------------------------
// The sender (this process)
// ------------------------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
}

async function ownServer() {
  const port = await freePort()
  const server = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] })
  await new Promise((resolve, reject) => {
    let log = ''
    server.on('error', (e) => reject(new Error(`cannot start nats-server (${e.message}); pass --url`)))
    server.stderr.on('data', (d) => {
      log += d
      if (log.includes('Server is ready')) resolve()
    })
  })
  process.on('exit', () => server.kill())
  return { url: `nats://127.0.0.1:${port}`, stop: () => server.kill() }
}

/** The child's next message that `accept` takes. */
function nextMessage(child, accept) {
  return new Promise((resolve) => {
    const on = (message) => {
      if (!accept(message)) return
      child.off('message', on)
      resolve(message)
    }
    child.on('message', on)
  })
}

/** Pings the child every 100 ms until stopped: how many it answered, and how soon. */
function pingEvery100ms(child) {
  const sentAt = new Map()
  const answers = []
  let next = 0
  child.on('message', (message) => {
    if (message.pong === undefined) return
    answers.push(performance.now() - sentAt.get(message.pong))
    sentAt.delete(message.pong)
  })
  const timer = setInterval(() => {
    sentAt.set(next, performance.now())
    child.send({ ping: next++ })
  }, 100)
  return () => {
    clearInterval(timer)
    answers.sort((x, y) => x - y)
    return {
      sent: next,
      answered: answers.length,
      p99: answers.length === 0 ? NaN : answers[Math.floor((answers.length - 1) * 0.99)],
      max: answers.length === 0 ? NaN : answers[answers.length - 1],
    }
  }
}

async function sender() {
  const fanouts = Number(arg('fanouts', '200000'))
  const maxInFlight = arg('max-in-flight', undefined)
  const awaiting = !process.argv.includes('--no-await')
  const deadline = Date.now() + Number(arg('timeout', '300')) * 1000
  const given = arg('url', process.env.HAPPEN_NATS_URL)
  const server = given ? { url: given, stop: () => {} } : await ownServer()
  const child = fork(fileURLToPath(import.meta.url), ['--child', server.url], { stdio: 'inherit' })
  await nextMessage(child, (m) => m.ready)

  const { initializeHappen, createNodeArray } = await import('../index.mjs')
  const transport = { type: 'nats', servers: [server.url] }
  if (maxInFlight !== undefined) transport.maxInFlight = Number(maxInFlight)
  const happen = await initializeHappen({ transport })
  const nodes = createNodeArray(NODE_IDS.map((id) => happen.node(id)))
  await nodes.send({ type: 'soak.echo', payload: -1 }).return()
  global.gc?.()
  const rssBefore = process.memoryUsage().rss

  let peakRss = rssBefore
  const sampler = setInterval(() => {
    const rss = process.memoryUsage().rss
    if (rss > peakRss) peakRss = rss
  }, 20)
  child.send({ start: true })
  await nextMessage(child, (m) => m.started)
  const stopPings = pingEvery100ms(child)

  let delivered = 0
  let failed = 0
  let firstFailure = null
  let settled = 0
  let allSettled
  const done = new Promise((resolve) => (allSettled = resolve))
  const count = (n) => (results) => {
    if (results[NODE_IDS[0]] === n && results[NODE_IDS[1]] === n) delivered++
    else failed++
    if (++settled === fanouts) allSettled()
  }
  const fail = (error) => {
    failed++
    firstFailure ??= error
    if (++settled === fanouts) allSettled()
  }
  const started = performance.now()
  let timedOut = false
  for (let n = 0; n < fanouts; n++) {
    const sending = nodes.send({ type: 'soak.echo', payload: n })
    sending.return().then(count(n), fail)
    if (awaiting) await sending
    if (n % 1000 === 999 && Date.now() > deadline) {
      timedOut = true
      break
    }
  }
  const queuedIn = performance.now() - started
  const timeout = new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref())
  await Promise.race([done, timeout])
  if (settled < fanouts) timedOut = true
  const seconds = (performance.now() - started) / 1000
  clearInterval(sampler)
  const pings = stopPings()
  child.send({ stop: true })
  const report = await nextMessage(child, (m) => m.lag !== undefined)
  await happen.shutdown()
  server.stop()

  const peakRssMB = Math.max(mb(peakRss), process.resourceUsage().maxRSS / 1024)
  const lines = [
    `backpressure: ${fanouts} fan-outs to 2 nodes in another process, ${awaiting ? 'awaiting producer' : 'producer not awaiting'}, maxInFlight ${maxInFlight ?? 'default'}`,
    `  ${seconds.toFixed(1)} s (sends ${awaiting ? 'admitted' : 'queued'} in ${(queuedIn / 1000).toFixed(1)} s), ${Math.round(settled / seconds)} fan-outs/s`,
    `  delivered ${delivered} of ${fanouts}${failed > 0 ? `, ${failed} failed (first: ${firstFailure?.message ?? 'a wrong result'})` : ''}${timedOut ? ', TIMED OUT' : ''}`,
    `  sender RSS: ${mb(rssBefore).toFixed(0)} MB before, peak ${peakRssMB.toFixed(0)} MB (target ≤ ${TARGET_RSS_MB})`,
    `  receiver event loop delay while serving: p50 ${report.lag.p50.toFixed(1)} ms, p99 ${report.lag.p99.toFixed(1)} ms (target ≤ ${TARGET_LAG_P99_MS}), max ${report.lag.max.toFixed(1)} ms; served ${report.served}, RSS ${report.rssMB.toFixed(0)} MB`,
    `  receiver answered ${pings.answered} of ${pings.sent} IPC pings, p99 ${pings.p99.toFixed(1)} ms, max ${pings.max.toFixed(1)} ms`,
  ]
  console.log(lines.join('\n'))
  const met = peakRssMB <= TARGET_RSS_MB && delivered === fanouts && report.lag.p99 <= TARGET_LAG_P99_MS
  console.log(met ? 'backpressure: targets met' : 'backpressure: TARGETS MISSED')
  process.exit(met ? 0 : 1)
}

if (process.argv[2] === '--child') await receiver(process.argv[3])
else await sender()
