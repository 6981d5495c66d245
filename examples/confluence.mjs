// happen, end to end: fan-out to a node array, a fan-in batch, divergent flows, and the causal
// tree they leave behind. Run with `npm run example`.
import { initializeHappen } from 'happen'

const happen = initializeHappen()
const orderNode = happen.createNode('order-service')
const inventoryNode = happen.createNode('inventory-service')
const notificationNode = happen.createNode('notification-service')
const analyticsNode = happen.createNode('analytics')
const nodes = happen.createNodeArray([orderNode, inventoryNode, notificationNode])

// Fan-out: one event, every node answers; results come back keyed by node id.
nodes.on('health.check', (event, context) => ({ status: 'healthy', service: context.node.id }))
const health = await nodes.send({ type: 'health.check', payload: {} }).return()
console.log('Fan-out results:', health)

// Fan-in: a batch reaches one handler as one array, each event with its own causal context.
analyticsNode.on('metric', (events, context) => {
  if (!Array.isArray(events)) return events.payload.value
  const total = events.reduce((sum, e) => sum + e.payload.value, 0)
  console.log(`Batch of ${events.length} received at ${new Date(context.receivedAt).toISOString()}`)
  console.log(`  first event ${context.events[0].causal.id}, last ${context.events.at(-1).causal.id}`)
  return { count: events.length, total }
})
const summary = await analyticsNode.process([10, 20, 30].map((value) => ({ type: 'metric', payload: { value } })))
console.log('Fan-in result:', summary)

// Divergent flows: each node continues with its own next function, in its own context.
function updateOrderRecord(event, context) {
  context.nodeState = { record: `order ${event.payload.orderId} updated` }
  return context.nodeState
}
async function updateInventoryLevels(event, context) {
  await new Promise((resolve) => setTimeout(resolve, 5))
  // Sent from inside the flow: caused by 'order-updated', correlated with it, traced under it.
  await context.node.send(analyticsNode, { type: 'metric', payload: { value: event.payload.items } })
  return { reserved: event.payload.items }
}
function sendNotifications(event) {
  return { notified: `customer of order ${event.payload.orderId}` }
}
nodes.on('order-updated', (event, context) => {
  const nodeId = context.node.id
  if (nodeId === 'order-service') return updateOrderRecord
  if (nodeId === 'inventory-service') return updateInventoryLevels
  return sendNotifications
})

const result = await nodes.send({ type: 'order-updated', payload: { orderId: 'A-17', items: 3 } })
console.log('Divergent flow results:', await result.return())

console.log('\nCausal tree of the order update:')
console.log(String(result.trace()))
