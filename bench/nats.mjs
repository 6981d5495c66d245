// S7 — fan-out to 5 nodes in other processes over NATS + return(): happen's NATS transport
// beside a raw nats.js scatter-gather (publish once, collect 5 replies on one inbox) and
// Moleculer 0.14 with its NATS transporter (mcall to 5 services), in two topologies in the same
// run: the 5 receivers in one process, and one receiver per process (the usual deployment).
//
//   node bench/nats.mjs [--url nats://127.0.0.1:4222] [--seconds 3] [--procs 1,5] [--rounds 1]
//                       [--only happen,raw,moleculer] [--inflight 100] [--cpu]
//
// Without --url (or HAPPEN_NATS_URL) it starts a nats-server of its own on a free port.
// Each implementation gets fresh child processes hosting its 5 receivers (--procs of them, the
// receivers spread over them); every receiver answers { ok: true, node: id }.
// Measured per implementation: sequential latency (one fan-out at a time: p50 / p99 in µs)
// and throughput with 100 fan-outs in flight (fan-outs per second, each = 5 results back).
// With --rounds > 1 the implementations take turns (the order reversed every other round) and
// each figure is the median of its rounds; the ratios are of those medians, all from this run.
// --cpu (Linux): also where the CPU goes during the throughput phase, per fan-out: the sender
// process, the receiver processes together, the nats-server (when the bench started it), and
// how much of the machine stayed idle (the fan-outs wait on each other, not only on CPU).
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { performance } from 'node:perf_hooks'

const RECEIVERS = 5
function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? process.argv[at + 1] : fallback
}
const IN_FLIGHT = Number(arg('inflight', '100'))
const ids = Array.from({ length: RECEIVERS }, (_, i) => `n${i}`)

// ------------------------------------------------------------------------------------------
// Receivers (child processes)
// ------------------------------------------------------------------------------------------

async function child(kind, url, mine) {
  if (kind === 'happen') {
    const { initializeHappen, createNodeArray } = await import('../index.mjs')
    const happen = await initializeHappen({ transport: { type: 'nats', servers: [url] } })
    const nodes = createNodeArray(mine.map((id) => happen.createNode(id)))
    nodes.on('verify', (event, context) => ({ ok: true, node: context.node.id }))
    await happen.ready()
  } else if (kind === 'raw') {
    const { connect, JSONCodec } = await import('nats')
    const nc = await connect({ servers: url })
    const jc = JSONCodec()
    for (const id of mine) {
      nc.subscribe('bench.raw.verify', {
        callback: (error, msg) => {
          if (error) return
          jc.decode(msg.data)
          msg.respond(jc.encode({ ok: true, node: id }))
        },
      })
    }
    await nc.flush()
  } else {
    const { ServiceBroker } = (await import('moleculer')).default
    const broker = new ServiceBroker({
      nodeID: `srv-${process.pid}`,
      transporter: url,
      logger: false,
      serializer: 'JSON',
    })
    for (const id of mine) {
      broker.createService({ name: id, actions: { verify: () => ({ ok: true, node: id }) } })
    }
    await broker.start()
  }
  process.stdout.write('ready\n')
  process.stdin.resume()
  process.stdin.on('end', () => process.exit(0))
}

// ------------------------------------------------------------------------------------------
// Senders (this process)
// ------------------------------------------------------------------------------------------

async function happenSender(url) {
  const { initializeHappen } = await import('../index.mjs')
  const happen = await initializeHappen({ transport: { type: 'nats', servers: [url] } })
  const nodes = happen.createNodeArray(ids.map((id) => happen.node(id)))
  let i = 0
  return {
    call: () => nodes.send({ type: 'verify', payload: { order: i++ } }).return(),
    close: () => happen.shutdown(),
  }
}

async function rawSender(url) {
  const { connect, JSONCodec, createInbox } = await import('nats')
  const nc = await connect({ servers: url })
  const jc = JSONCodec()
  const prefix = createInbox()
  const pending = new Map()
  let next = 1
  nc.subscribe(`${prefix}.*`, {
    callback: (error, msg) => {
      if (error) return
      const key = Number(msg.subject.slice(prefix.length + 1))
      const entry = pending.get(key)
      if (entry === undefined) return
      const value = jc.decode(msg.data)
      entry.results[value.node] = value
      if (++entry.count === RECEIVERS) {
        pending.delete(key)
        entry.resolve(entry.results)
      }
    },
  })
  await nc.flush()
  let i = 0
  return {
    call: () =>
      new Promise((resolve) => {
        const key = next++
        pending.set(key, { results: {}, count: 0, resolve })
        nc.publish('bench.raw.verify', jc.encode({ type: 'verify', payload: { order: i++ } }), {
          reply: `${prefix}.${key}`,
        })
      }),
    close: () => nc.close(),
  }
}

async function moleculerSender(url) {
  const { ServiceBroker } = (await import('moleculer')).default
  const broker = new ServiceBroker({
    nodeID: `client-${process.pid}`,
    transporter: url,
    logger: false,
    serializer: 'JSON',
  })
  await broker.start()
  await broker.waitForServices(ids)
  let i = 0
  return {
    call: () => {
      const params = { order: i++ }
      const calls = {}
      for (const id of ids) calls[id] = { action: `${id}.verify`, params }
      return broker.mcall(calls)
    },
    close: () => broker.stop(),
  }
}

// ------------------------------------------------------------------------------------------
// Measurement
// ------------------------------------------------------------------------------------------

/** CPU time (ns) of every thread of process `pid` so far, from /proc (0 when it is gone). */
function cpuNs(pid) {
  let total = 0
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      total += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0])
    }
  } catch {}
  return total
}

/** The machine's idle and total jiffies so far (/proc/stat). */
function machineTicks() {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  return { idle: cpu[3] + cpu[4], total: cpu.reduce((a, b) => a + b, 0) }
}

/** A reading of where the CPU goes (`who`: { sender, receivers: [pid], server: pid? }). */
function cpuReading(who) {
  return {
    sender: cpuNs(who.sender),
    receivers: who.receivers.reduce((sum, pid) => sum + cpuNs(pid), 0),
    server: who.server === undefined ? 0 : cpuNs(who.server),
    machine: machineTicks(),
  }
}

/** µs of CPU per fan-out between two readings, and the share of the machine left idle. */
function cpuPerFanOut(before, after, fanOuts) {
  const per = (key) => (after[key] - before[key]) / 1000 / fanOuts
  const idle = after.machine.idle - before.machine.idle
  return {
    sender: per('sender'),
    receivers: per('receivers'),
    server: per('server'),
    idle: idle / (after.machine.total - before.machine.total),
  }
}

async function measure(sender, seconds, who) {
  // Warm-up, then a check of the result's shape.
  for (let i = 0; i < 500; i++) await sender.call()
  const sample = await sender.call()
  for (const id of ids)
    if (!sample[id] || sample[id].node !== id) throw new Error(`bad result: ${JSON.stringify(sample)}`)

  const latencies = []
  const latencyEnd = performance.now() + (seconds * 1000) / 2
  while (performance.now() < latencyEnd) {
    const start = performance.now()
    await sender.call()
    latencies.push(performance.now() - start)
  }
  latencies.sort((a, b) => a - b)
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] * 1000

  let done = 0
  const throughputEnd = performance.now() + (seconds * 1000) / 2
  const started = performance.now()
  const before = who === null ? null : cpuReading(who)
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < throughputEnd) {
        await sender.call()
        done++
      }
    }),
  )
  const elapsed = (performance.now() - started) / 1000
  const cpu = before === null ? null : cpuPerFanOut(before, cpuReading(who), done)
  return { p50: at(0.5), p99: at(0.99), sequential: latencies.length, perSecond: done / elapsed, cpu }
}

function startChildren(kind, url, procs) {
  const self = fileURLToPath(import.meta.url)
  const groups = Array.from({ length: procs }, () => [])
  ids.forEach((id, i) => groups[i % procs].push(id))
  return Promise.all(
    groups.map(
      (mine) =>
        new Promise((resolve, reject) => {
          const extra = process.env.S7_CHILD_NODE_ARGS ? process.env.S7_CHILD_NODE_ARGS.split(' ') : []
          const c = spawn(process.execPath, [...extra, self, '--child', kind, url, mine.join(',')], {
            stdio: ['pipe', 'pipe', 'inherit'],
          })
          c.stdout.once('data', () => resolve(c))
          c.on('exit', (code) => reject(new Error(`${kind} receivers exited with ${code}`)))
        }),
    ),
  )
}

function stopChildren(children) {
  return Promise.all(
    children.map(
      (c) =>
        new Promise((resolve) => {
          c.removeAllListeners('exit')
          c.once('exit', resolve)
          c.stdin.end()
          setTimeout(() => c.kill('SIGKILL'), 2000).unref()
        }),
    ),
  )
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
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
  return { url: `nats://127.0.0.1:${port}`, pid: server.pid, stop: () => server.kill() }
}

const median = (values) => {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.floor((sorted.length - 1) / 2)]
}

async function measureOnce(kind, server, procs, seconds, cpu) {
  const senders = { happen: happenSender, raw: rawSender, moleculer: moleculerSender }
  const children = await startChildren(kind, server.url, procs)
  const sender = await senders[kind](server.url)
  const who = cpu ? { sender: process.pid, receivers: children.map((c) => c.pid), server: server.pid } : null
  try {
    return await measure(sender, seconds, who)
  } finally {
    await sender.close()
    await stopChildren(children)
  }
}

async function main() {
  const seconds = Number(arg('seconds', '3'))
  const topologies = arg('procs', '1,5').split(',').map(Number)
  const rounds = Number(arg('rounds', '1'))
  const only = arg('only', 'happen,raw,moleculer').split(',')
  const cpu = process.argv.includes('--cpu')
  if (cpu && process.platform !== 'linux') throw new Error('--cpu reads /proc: Linux only')
  const given = arg('url', process.env.HAPPEN_NATS_URL)
  const server = given ? { url: given, stop() {} } : await ownServer()
  const names = { happen: 'happen (NATS)', raw: 'raw nats.js scatter-gather', moleculer: 'moleculer 0.14 mcall (NATS)' }
  const results = {}
  console.log(
    `S7 on Node ${process.versions.node}: fan-out to ${RECEIVERS} nodes in other processes over NATS + return(); ${seconds}s per implementation, ${rounds} round(s)`,
  )
  for (const procs of topologies) {
    const runs = Object.fromEntries(only.map((kind) => [kind, []]))
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? only : [...only].reverse()
      for (const kind of order) runs[kind].push(await measureOnce(kind, server, procs, seconds, cpu))
    }
    const rows = {}
    const where = procs === 1 ? `${RECEIVERS} nodes in one process` : `${RECEIVERS} nodes in ${procs} processes`
    console.log(`${where}:`)
    for (const kind of only) {
      const r = (rows[kind] = {
        p50: median(runs[kind].map((x) => x.p50)),
        p99: median(runs[kind].map((x) => x.p99)),
        perSecond: median(runs[kind].map((x) => x.perSecond)),
      })
      console.log(
        `  ${names[kind].padEnd(30)} p50 ${r.p50.toFixed(0).padStart(6)} µs  p99 ${r.p99.toFixed(0).padStart(6)} µs  ` +
          `${r.perSecond.toFixed(0).padStart(7)} fan-outs/s (${IN_FLIGHT} in flight)`,
      )
      if (cpu) {
        const of = (key) => median(runs[kind].map((x) => x.cpu[key]))
        r.cpu = { sender: of('sender'), receivers: of('receivers'), server: of('server'), idle: of('idle') }
        const ofServer = given ? '' : `, nats-server ${r.cpu.server.toFixed(1)}`
        console.log(
          `  ${''.padEnd(30)} CPU µs per fan-out: sender ${r.cpu.sender.toFixed(1)}, receivers ${r.cpu.receivers.toFixed(1)}` +
            `${ofServer}; machine idle ${(100 * r.cpu.idle).toFixed(0)} %`,
        )
      }
    }
    if (rows.happen && rows.raw)
      console.log(
        `  happen / raw nats.js throughput: ${(rows.happen.perSecond / rows.raw.perSecond).toFixed(2)}x (target >= 1.3)`,
      )
    if (rows.happen && rows.moleculer)
      console.log(
        `  happen / moleculer throughput:   ${(rows.happen.perSecond / rows.moleculer.perSecond).toFixed(2)}x (target >= 3)`,
      )
    results[procs] = rows
  }
  server.stop()
  return results
}

// Run directly: measure (or be a child). Imported (bench/index.mjs): just export main().
const direct = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (direct && process.argv[2] === '--child') {
  await child(process.argv[3], process.argv[4], process.argv[5].split(','))
} else if (direct) {
  await main()
  process.exit(0)
}

/** Runs S7 and resolves to { [procs]: { happen, raw, moleculer } }, each { p50, p99 (µs), perSecond } (medians of the rounds). */
export { main }
