// The examples of CONFLUENCE.md as a TypeScript user writes them: handlers
// exactly as in the document (no annotations), checked by `tsc --strict`.
// Helpers the document leaves undefined are declared the way a user would.
import { createNode, createNodeArray, initializeHappen, trace, HappenError } from 'happen'

declare function processBatch(events: readonly { payload?: unknown }[]): { count: number }
declare function processSingle(event: { payload?: unknown }): { count: number }
declare function analyzeMetricsBatch(metrics: unknown[]): number
declare function analyzeSingleMetric(metric: unknown): number
declare function updatePrimary(payload: unknown): Promise<{ ok: boolean }>
declare function updateReplica(payload: unknown): Promise<{ ok: boolean }>
declare function invalidateCache(payload: unknown): Promise<{ ok: boolean }>
const updateOrderRecord = (event: unknown) => ({ order: true })
const updateInventoryLevels = (event: unknown) => ({ stock: true })
async function sendNotifications() {
  return { notified: true }
}

const orderNode = createNode('order-node')
const paymentNode = createNode('payment-node')
const inventoryNode = createNode('inventory-node')
const node = createNode('node')

// Fan-out: One Event, Multiple Nodes
export async function fanOut() {
  // Create a node array
  const nodes = createNodeArray([orderNode, paymentNode, inventoryNode])

  // Register handler on all nodes
  nodes.on('update', (event, context) => {
    // Each node gets context.node to identify itself
    console.log(`Processing in ${context.node.id}`)
    return { updated: true }
  })

  // Send to all nodes
  await nodes.send({
    type: 'update',
    payload: { data: 'new data' },
  })
}

// Fan-in: Multiple Events, One Handler
export async function fanIn() {
  // Handler can detect single event vs batch
  node.on('data-point', (eventOrEvents, context) => {
    if (Array.isArray(eventOrEvents)) {
      // Batch processing
      console.log(`Processing batch of ${eventOrEvents.length} events`)
      return processBatch(eventOrEvents)
    } else {
      // Single event
      console.log(`Processing single event`)
      return processSingle(eventOrEvents)
    }
  })

  // Send batch of events
  const events = [
    { type: 'data-point', payload: { value: 10 } },
    { type: 'data-point', payload: { value: 20 } },
    { type: 'data-point', payload: { value: 30 } },
  ]

  // Process as batch
  await node.process(events)
}

// Collecting Results from Multiple Nodes
export async function collectingResults() {
  const nodes = createNodeArray([orderNode, paymentNode, inventoryNode])

  const result = await nodes.send({
    type: 'verify-data',
    payload: { id: '123' },
  })

  // Get results from all nodes
  const responses = await result.return()

  // Access by node ID
  console.log(responses['order-node'])
  console.log(responses['payment-node'])
  console.log(responses['inventory-node'])
}

// Divergent Flows
export function divergentFlows() {
  const notificationNode = createNode('notification-service')
  const nodes = createNodeArray([orderNode, inventoryNode, notificationNode])

  nodes.on('order-updated', (event, context) => {
    const nodeId = context.node.id

    // Each node can return a different next function
    if (nodeId === 'order-service') {
      return updateOrderRecord
    } else if (nodeId === 'inventory-service') {
      return updateInventoryLevels
    } else {
      return sendNotifications
    }
  })
}

// Node Identification
export function nodeIdentification() {
  const nodes = createNodeArray([orderNode, paymentNode])

  nodes.on('process-event', (event, context) => {
    // context.node identifies the current node
    console.log(`Processing in: ${context.node.id}`)

    // Each node maintains its own isolated context
    context.nodeState = context.nodeState || {}
    context.nodeState.lastProcessed = Date.now()
  })
}

// Batch Context
export function batchContext() {
  node.on('data-point', (events, context) => {
    if (Array.isArray(events)) {
      // Batch-level information at the root
      console.log(`Processing batch of ${events.length} events`)
      console.log(`Batch received at: ${context.receivedAt}`)

      // Each event has its own context in the events array
      events.forEach((event, index) => {
        const eventContext = context.events[index]
        console.log(`Event ${index} causation: ${eventContext.causal.causationId}`)
      })
    }
  })
}

// Health Checks Across Services
export async function healthChecks() {
  const happen = initializeHappen()
  const api = happen.createNode('api')
  const database = happen.createNode('database')
  const cache = happen.createNode('cache')
  const queue = happen.createNode('queue')

  const services = createNodeArray([api, database, cache, queue])

  services.on('health.check', (event, context) => {
    return {
      status: 'healthy',
      service: context.node.id,
      timestamp: Date.now(),
    }
  })

  const result = await services.send({ type: 'health.check', payload: {} })
  const health = await result.return()
  return health
}

// Batch Analytics Processing
export function batchAnalytics() {
  const analyticsNode = createNode('analytics')

  analyticsNode.on('metric', (eventOrEvents, context) => {
    if (Array.isArray(eventOrEvents)) {
      // Efficient batch processing
      const metrics = eventOrEvents.map((e) => e.payload)
      return analyzeMetricsBatch(metrics)
    }
    return analyzeSingleMetric(eventOrEvents.payload)
  })
}

// Coordinated Updates
export async function coordinatedUpdates() {
  const primaryDB = createNode('primary-db')
  const replicaDB = createNode('replica-db')
  const cache = createNode('cache')

  const dataNodes = createNodeArray([primaryDB, replicaDB, cache])

  dataNodes.on('data.update', async (event, context) => {
    const nodeId = context.node.id

    if (nodeId.includes('primary')) {
      return await updatePrimary(event.payload)
    } else if (nodeId.includes('replica')) {
      return await updateReplica(event.payload)
    } else {
      return await invalidateCache(event.payload)
    }
  })

  // All nodes updated simultaneously
  await dataNodes.send({
    type: 'data.update',
    payload: { key: 'user:123', value: { name: 'Alice' } },
  })
}

// No Configuration Needed
export function noConfiguration() {
  // Single event
  node.send({ type: 'data-point', payload: { value: 42 } })

  // Batch as explicit array
  node.send([
    { type: 'data-point', payload: { value: 10 } },
    { type: 'data-point', payload: { value: 20 } },
    { type: 'data-point', payload: { value: 30 } },
  ])
}

// Best Practices
export async function bestPractices() {
  const node1 = createNode('node-1')
  const node2 = createNode('node-2')
  const node3 = createNode('node-3')
  const event = { type: 'sum', payload: { a: 1, b: 2 } }

  // 1.
  const nodes = createNodeArray([node1, node2, node3])

  // 2. and 3.
  nodes.on('sum', (events, context) => {
    if (Array.isArray(events)) {
      // Batch processing
    } else {
      // Single event processing
    }
    const nodeId = context.node.id
    return nodeId
  })

  // 4.
  const result = await nodes.send(event)
  const responses = await result.return()
  return responses
}

// The rest of the API, as SPEC.md describes it.
export async function restOfTheApi() {
  const happen = await initializeHappen({ historySize: 1000, transport: { type: 'memory' } })
  const a = happen.createNode('a')
  const b = happen.createNode('b')
  const id: string = a.id
  const sameId: string = a.getId()
  const remove = a.on('order.*', (event, context) => context.causal.correlationId)
  remove()
  a.on(
    (type) => type.startsWith('order'),
    async (event, context) => context.node.id,
  )
  const direct = await a.send(b, { type: 'x' }).return()
  const settled = await a.send([a, b], { type: 'x' }).return({ settled: true, timeout: 1000 })
  const outcomes = await a.send([a, b], { type: 'x' }).return({ settled: true })
  const firstOutcome = outcomes.a
  const status: 'fulfilled' | 'rejected' = firstOutcome.status
  const sent = await a.send('b', { type: 'x', causationId: 'c', correlationId: 'r' })
  const ids: string[] = sent.ids
  const tree = sent.trace()
  const printed: string = String(tree)
  const topTree = trace(ids[0])
  const rootType = happen.trace(ids[0])?.children.length
  await a.broadcast({ type: 'hello' })
  await happen.node('b').process({ type: 'x' })
  await happen.shutdown()
  try {
    await a.process({ type: 'x' })
  } catch (error) {
    if (error instanceof HappenError) {
      const code: string = error.code
      console.log(code)
    }
  }
  return { id, sameId, direct, settled, status, ids, printed, topTree, rootType }
}

// Misuse the types refuse.
export async function misuse() {
  const nodes = createNodeArray([orderNode, paymentNode])
  // @ts-expect-error an event is an object, not a number
  nodes.send(42)
  // @ts-expect-error an event needs a type
  node.send({ payload: { value: 1 } })
  // @ts-expect-error the type is a string
  node.send({ type: 7 })
  // @ts-expect-error a pattern is a string or a predicate
  node.on(42, () => {})
  // @ts-expect-error createNodeArray takes an array of nodes
  createNodeArray('order-node')
  // @ts-expect-error createNode takes a string id
  createNode(7)
  // @ts-expect-error historySize is a number
  initializeHappen({ historySize: 'big' })
  initializeHappen({ tracing: false })
  // @ts-expect-error tracing is a boolean
  initializeHappen({ tracing: 'off' })
  const result = await nodes.send({ type: 'x' })
  // @ts-expect-error timeout is a number of ms
  await result.return({ timeout: 'soon' })
  // @ts-expect-error trace takes a string id
  trace(42)
  node.on('x', (event, context) => {
    // @ts-expect-error context.node.id is a string, not any
    context.node.id.toFixed()
  })
  // @ts-expect-error return() options are { settled, timeout } only
  await result.return({ retries: 3 })
}
