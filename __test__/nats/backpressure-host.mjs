// A child process hosting happen nodes over NATS for the backpressure tests and
// scripts/backpressure.mjs.
//   node backpressure-host.mjs <url> <node ids, comma-separated> [heartbeat ms]
// Prints "ready" once its nodes are reachable; exits when its stdin closes. Lines on stdin:
//   "ping <n>"  answered "pong <n>" at once: how soon its event loop gets to I/O
//   "lag"       answered "lag <json>": its event loop's delay since the previous "lag"
//               (monitorEventLoopDelay, ms: p50, p99, max), the events it served meanwhile and
//               the most flows that ran at once
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { createNodeArray, initializeHappen } from '../../index.mjs'
import { serveUntilStdinEnds } from './host-lifecycle.mjs'

const [url, ids, heartbeat = '200'] = process.argv.slice(2)
const happen = await initializeHappen({ transport: { type: 'nats', servers: [url], heartbeat: Number(heartbeat) } })
const nodes = createNodeArray(ids.split(',').map((id) => happen.createNode(id)))

let served = 0
let running = 0
let mostRunning = 0

// Runs `payload.ms` on a timer: the flows running at once are the requests its senders let go.
nodes.on('gauge', async (event, context) => {
  served++
  running++
  if (running > mostRunning) mostRunning = running
  await new Promise((resolve) => setTimeout(resolve, event.payload.ms))
  running--
  return { by: context.node.id, n: event.payload.n }
})
// Busy for `payload.us` microseconds: a backlog of these is CPU-bound work.
nodes.on('work', (event, context) => {
  served++
  const end = performance.now() + event.payload.us / 1000
  while (performance.now() < end);
  return { by: context.node.id, n: event.payload.n }
})

// Asks node `payload.to` (in the sender's process) and answers with its answer: a flow that
// calls back into the process that sent its event.
nodes.on('ask', async (event, context) => ({
  by: context.node.id,
  answer: await context.node.send(event.payload.to, { type: 'asked', payload: event.payload }).return(),
}))
nodes.on('leaf', (event, context) => context.node.id)

const lag = monitorEventLoopDelay({ resolution: 10 })
lag.enable()
createInterface({ input: process.stdin }).on('line', (command) => {
  if (command.startsWith('ping ')) process.stdout.write(`pong ${command.slice(5)}\n`)
  else if (command === 'lag') {
    const ms = (ns) => Math.round(ns / 1e4) / 100
    const report = {
      p50: ms(lag.percentile(50)),
      p99: ms(lag.percentile(99)),
      max: ms(lag.max),
      served,
      mostRunning,
    }
    lag.reset()
    served = 0
    mostRunning = running
    process.stdout.write(`lag ${JSON.stringify(report)}\n`)
  }
})

await serveUntilStdinEnds(happen)
