// A child process hosting happen nodes over NATS for the transport tests.
//   node host.mjs <url> <node ids, comma-separated> [heartbeat ms] [more transport options, JSON]
// Prints "ready" once its nodes are reachable; exits when its stdin closes (the test ended).
import { initializeHappen, createNodeArray } from '../../index.mjs'
import { serveUntilStdinEnds } from './host-lifecycle.mjs'

const [url, ids, heartbeat = '200', options = '{}'] = process.argv.slice(2)
const happen = await initializeHappen({
  transport: { type: 'nats', servers: [url], heartbeat: Number(heartbeat), ...JSON.parse(options) },
})
const nodes = createNodeArray(ids.split(',').map((id) => happen.createNode(id)))

nodes.on('echo', (event, context) => ({
  by: context.node.id,
  payload: event.payload,
  causal: event.context.causal,
  pid: process.pid,
}))
nodes.on('fail', (event, context) => {
  const error = new RangeError(`boom from ${context.node.id}`)
  error.code = 'E_REMOTE'
  throw error
})
nodes.on('slow', async (event, context) => {
  await new Promise((resolve) => setTimeout(resolve, event.payload.ms))
  return `${context.node.id} slept ${event.payload.ms} ms`
})
// Never ends on the nodes the payload names (the test kills their process); quick elsewhere.
nodes.on('hang', (event, context) =>
  event.payload.hang.includes(context.node.id) ? new Promise(() => {}) : `${context.node.id} done`,
)
nodes.on('flow', function firstStep() {
  return function secondStep(event, context) {
    return `${context.node.id}: two steps`
  }
})
// Sends from inside the flow (after an await): causality must cross back with the event.
nodes.on('relay', async (event, context) => {
  await new Promise((resolve) => setTimeout(resolve, 1))
  const node = happen.node(context.node.id)
  const answer = await node.send(event.payload.to, { type: 'relayed', payload: { from: context.node.id } }).return()
  return { answer, seen: event.context.causal }
})
// This process's trace of the event it serves (its flow still running).
nodes.on('traced.here', (event) => {
  const tree = happen.trace(event.context.causal.id)
  return { id: tree.id, correlationId: tree.correlationId, node: tree.branches[0].node }
})
nodes.on('unserialisable', () => ({ keep: 1, bad: { callback() {} } }))
nodes.on('batch.*', (events, context) =>
  Array.isArray(events)
    ? {
        size: events.length,
        types: events.map((e) => e.type),
        ids: context.events.map((e) => e.causal.id),
        payloads: events.map((e) => e.payload),
      }
    : 'single',
)
nodes.on('undefined', () => undefined)
// Answers after the current turn: many replies end in one turn and leave together.
nodes.on('async.echo', async (event, context) => {
  await null
  return { by: context.node.id, n: event.payload }
})
nodes.on('big.result', (event) => 'z'.repeat(event.payload.bytes))
// How many times each flow ran, by key: a request sent again must not run twice.
const runs = new Map()
nodes.on('counted', async (event, context) => {
  const { key, ms } = event.payload
  runs.set(key, (runs.get(key) ?? 0) + 1)
  await new Promise((resolve) => setTimeout(resolve, ms))
  return { key, by: context.node.id }
})
nodes.on('runs', () => Object.fromEntries(runs))

await serveUntilStdinEnds(happen)
