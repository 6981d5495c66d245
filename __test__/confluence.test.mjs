// Every code block of shared/seed/CONFLUENCE.md, run as written.
//
// Each test is: the node-creation / helper lines the block leaves out, then the
// block pasted verbatim (between the `CONFLUENCE.md` markers), then assertions on
// what actually happened (console output, results, contexts, causal ids).
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createNodeArray } from 'happen'
import * as happenTop from 'happen'
import { traceEvents } from './helpers.mjs'

const { initializeHappen } = happenTop

afterEach(() => {
  vi.restoreAllMocks()
})

/** Silence console.log while recording what the document's handlers print. */
function spyLog() {
  return vi.spyOn(console, 'log').mockImplementation(() => {})
}

/** Every console.log line printed so far, as a string. */
function lines(spy) {
  return spy.mock.calls.map((args) => args.map(String).join(' '))
}

describe('Fan-out: One Event, Multiple Nodes', () => {
  it('delivers one update to every node, each handler sees its own context.node', async () => {
    const log = spyLog()
    // Lines the block leaves out. The block imports from 'happen' at top level,
    // so it runs on the default runtime: these ids are unique in this file.
    const orderNode = happenTop.createNode('order-node')
    const paymentNode = happenTop.createNode('payment-node')
    const inventoryNode = happenTop.createNode('inventory-node')

    // ---- CONFLUENCE.md ----
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
    // ---- end ----

    await vi.waitFor(() => expect(log).toHaveBeenCalledTimes(3))
    expect(lines(log).sort()).toEqual([
      'Processing in inventory-node',
      'Processing in order-node',
      'Processing in payment-node',
    ])

    // Each node's flow result is { updated: true }, keyed by node id.
    const again = await nodes.send({ type: 'update', payload: { data: 'newer data' } })
    expect(await again.return()).toEqual({
      'order-node': { updated: true },
      'payment-node': { updated: true },
      'inventory-node': { updated: true },
    })
  })
})

describe('Fan-in: Multiple Events, One Handler', () => {
  it('processes the array as one batch in one handler call, a single event alone', async () => {
    const log = spyLog()
    const node = initializeHappen().createNode('sensor')
    const processBatch = vi.fn((events) => ({
      count: events.length,
      total: events.reduce((sum, e) => sum + e.payload.value, 0),
    }))
    const processSingle = vi.fn((event) => ({ count: 1, total: event.payload.value }))

    // ---- CONFLUENCE.md ----
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
    // ---- end ----

    // process() runs the flow now: by the time it resolves, the handler has run once.
    expect(lines(log)).toEqual(['Processing batch of 3 events'])
    expect(processSingle).not.toHaveBeenCalled()
    expect(processBatch).toHaveBeenCalledTimes(1)
    const batch = processBatch.mock.calls[0][0]
    expect(batch.map((e) => e.type)).toEqual(['data-point', 'data-point', 'data-point'])
    expect(batch.map((e) => e.payload)).toEqual(events.map((e) => e.payload))

    // The batch's result is the handler's result.
    expect(await node.process(events)).toEqual({ count: 3, total: 60 })

    // One event takes the single-event branch.
    const single = await node.process({ type: 'data-point', payload: { value: 7 } })
    expect(lines(log).at(-1)).toBe('Processing single event')
    expect(processSingle.mock.calls[0][0]).toMatchObject({ type: 'data-point', payload: { value: 7 } })
    expect(single).toEqual({ count: 1, total: 7 })
    expect(processBatch).toHaveBeenCalledTimes(2)
  })
})

describe('Collecting Results from Multiple Nodes', () => {
  it("result.return() gives every node's result keyed by node id", async () => {
    const log = spyLog()
    const { createNode, createNodeArray } = initializeHappen()
    const orderNode = createNode('order-node')
    const paymentNode = createNode('payment-node')
    const inventoryNode = createNode('inventory-node')
    const nodes = createNodeArray([orderNode, paymentNode, inventoryNode])
    nodes.on('verify-data', (event, context) => ({
      verifiedBy: context.node.id,
      id: event.payload.id,
    }))

    // ---- CONFLUENCE.md ----
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
    // ---- end ----

    expect(Object.getPrototypeOf(responses)).toBe(Object.prototype)
    expect(Object.keys(responses).sort()).toEqual(['inventory-node', 'order-node', 'payment-node'])
    expect(log.mock.calls.map((args) => args[0])).toEqual([
      { verifiedBy: 'order-node', id: '123' },
      { verifiedBy: 'payment-node', id: '123' },
      { verifiedBy: 'inventory-node', id: '123' },
    ])
  })
})

describe('Divergent Flows', () => {
  it('each node continues with the next function it returned, with its own context', async () => {
    const { createNode, createNodeArray } = initializeHappen()
    const orderNode = createNode('order-service')
    const inventoryNode = createNode('inventory-service')
    const notificationNode = createNode('notification-service')
    const calls = []
    function updateOrderRecord(event, context) {
      calls.push({ fn: 'updateOrderRecord', node: context.node.id, event, context })
      return { order: event.payload.orderId, by: context.node.id }
    }
    function updateInventoryLevels(event, context) {
      calls.push({ fn: 'updateInventoryLevels', node: context.node.id, event, context })
      return { stock: event.payload.orderId, by: context.node.id }
    }
    async function sendNotifications(event, context) {
      calls.push({ fn: 'sendNotifications', node: context.node.id, event, context })
      return { notified: event.payload.orderId, by: context.node.id }
    }

    // ---- CONFLUENCE.md ----
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
    // ---- end ----

    const result = await nodes.send({ type: 'order-updated', payload: { orderId: 'o-1' } })
    expect(await result.return()).toEqual({
      'order-service': { order: 'o-1', by: 'order-service' },
      'inventory-service': { stock: 'o-1', by: 'inventory-service' },
      'notification-service': { notified: 'o-1', by: 'notification-service' },
    })

    // Each node ran exactly its own next function...
    expect(calls.map((c) => `${c.node}:${c.fn}`).sort()).toEqual([
      'inventory-service:updateInventoryLevels',
      'notification-service:sendNotifications',
      'order-service:updateOrderRecord',
    ])
    // ...on the same event (one fan-out event), with an isolated context per node.
    expect(new Set(calls.map((c) => c.event.context.causal.id)).size).toBe(1)
    expect(calls[0].event.context.causal.id).toBe(result.id)
    expect(new Set(calls.map((c) => c.context)).size).toBe(3)

    // The causal tree has one branch per node, each naming its next function.
    const tree = await result.trace()
    expect(tree.id).toBe(result.id)
    const byNode = Object.fromEntries(tree.branches.map((b) => [b.node, b]))
    expect(Object.keys(byNode).sort()).toEqual(['inventory-service', 'notification-service', 'order-service'])
    expect(byNode['order-service'].steps.map((s) => s.name)).toContain('updateOrderRecord')
    expect(byNode['inventory-service'].steps.map((s) => s.name)).toContain('updateInventoryLevels')
    expect(byNode['notification-service'].steps.map((s) => s.name)).toContain('sendNotifications')
    for (const branch of tree.branches) expect(branch.outcome).toBe('fulfilled')
  })
})

describe('Node Identification', () => {
  it('context.node names the node running the handler; context writes stay in that flow', async () => {
    const log = spyLog()
    const { createNode, createNodeArray } = initializeHappen()
    const nodes = createNodeArray([createNode('worker-a'), createNode('worker-b'), createNode('worker-c')])

    // ---- CONFLUENCE.md ----
    nodes.on('process-event', (event, context) => {
      // context.node identifies the current node
      console.log(`Processing in: ${context.node.id}`)

      // Each node maintains its own isolated context
      context.nodeState = context.nodeState || {}
      context.nodeState.lastProcessed = Date.now()
    })
    // ---- end ----

    // A later event on the same nodes reads what its own context holds.
    const seen = {}
    nodes.on('process-event.done', (event, context) => {
      seen[context.node.id] = context.nodeState
    })

    const result = await nodes.send({ type: 'process-event', payload: {} })
    // The handler ends each flow with undefined.
    expect(await result.return()).toStrictEqual({
      'worker-a': undefined,
      'worker-b': undefined,
      'worker-c': undefined,
    })
    expect(lines(log).sort()).toEqual(['Processing in: worker-a', 'Processing in: worker-b', 'Processing in: worker-c'])

    // A later flow starts with a fresh context: nothing stored by the first one leaks in.
    const second = await nodes.process({ type: 'process-event.done' })
    expect(second).toStrictEqual({ 'worker-a': undefined, 'worker-b': undefined, 'worker-c': undefined })
    expect(seen).toStrictEqual({ 'worker-a': undefined, 'worker-b': undefined, 'worker-c': undefined })
  })
})

describe('Batch Context', () => {
  function batchHandler(node) {
    // ---- CONFLUENCE.md ----
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
    // ---- end ----
  }

  it('gives batch-level receivedAt and a causal context per event', async () => {
    const log = spyLog()
    const { createNode } = initializeHappen()
    const node = createNode('collector')
    const sensor = createNode('sensor')
    batchHandler(node)

    // The batch is sent from inside sensor's flow, so each event is caused by 'flush'.
    sensor.on('flush', () =>
      sensor
        .send(node, [
          { type: 'data-point', payload: { value: 1 } },
          { type: 'data-point', payload: { value: 2 } },
          { type: 'data-point', payload: { value: 3 } },
        ])
        .return(),
    )

    const before = Date.now()
    const flush = await sensor.send({ type: 'flush' })
    await flush.return()
    const after = Date.now()

    const out = lines(log)
    expect(out[0]).toBe('Processing batch of 3 events')
    const receivedAt = Number(out[1].replace('Batch received at: ', ''))
    expect(out[1]).toMatch(/^Batch received at: \d+$/)
    expect(receivedAt).toBeGreaterThanOrEqual(before)
    expect(receivedAt).toBeLessThanOrEqual(after)
    expect(out.slice(2)).toEqual([
      `Event 0 causation: ${flush.id}`,
      `Event 1 causation: ${flush.id}`,
      `Event 2 causation: ${flush.id}`,
    ])
  })

  it('a batch sent from outside any handler consists of root events', async () => {
    const log = spyLog()
    const { createNode } = initializeHappen()
    const node = createNode('collector')
    batchHandler(node)

    await node.process([
      { type: 'data-point', payload: { value: 1 } },
      { type: 'data-point', payload: { value: 2 } },
    ])

    expect(lines(log).slice(2)).toEqual(['Event 0 causation: null', 'Event 1 causation: null'])
  })
})

describe('Causality Preservation', () => {
  it('records each batch member and each fan-out branch in the causal tree', async () => {
    const { createNode, createNodeArray, trace } = initializeHappen()
    const hub = createNode('hub')
    const left = createNode('left')
    const right = createNode('right')
    const nodes = createNodeArray([left, right])
    nodes.on('job', (event, context) => context.node.id)
    hub.on('start', () =>
      nodes
        .send([
          { type: 'job', payload: 1 },
          { type: 'job', payload: 2 },
        ])
        .return(),
    )

    const start = await hub.send({ type: 'start' })
    expect(await start.return()).toEqual({ left: 'left', right: 'right' })

    const events = traceEvents(trace(start.id))
    const batch = events.find((e) => e.batch)
    expect(batch).toBeDefined()
    expect(batch.batch.size).toBe(2)
    expect(batch.causationId).toBe(start.id)
    expect(batch.branches.map((b) => b.node).sort()).toEqual(['left', 'right'])
    // Every member of the batch is traceable by its own id.
    for (const id of batch.batch.ids) expect(trace(id)).not.toBeNull()
  })
})

describe('Health Checks Across Services', () => {
  it('collects a health report from every service', async () => {
    const { createNode, createNodeArray } = initializeHappen()
    const api = createNode('api')
    const database = createNode('database')
    const cache = createNode('cache')
    const queue = createNode('queue')
    const before = Date.now()

    // ---- CONFLUENCE.md ----
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
    // ---- end ----

    const after = Date.now()
    expect(Object.keys(health).sort()).toEqual(['api', 'cache', 'database', 'queue'])
    for (const [id, report] of Object.entries(health)) {
      expect(report).toMatchObject({ status: 'healthy', service: id })
      expect(report.timestamp).toBeGreaterThanOrEqual(before)
      expect(report.timestamp).toBeLessThanOrEqual(after)
    }
  })
})

describe('Batch Analytics Processing', () => {
  it('analyses a batch in one call and a single metric on its own', async () => {
    const { createNode } = initializeHappen()
    const analyticsNode = createNode('analytics')
    const analyzeMetricsBatch = vi.fn((metrics) => ({
      n: metrics.length,
      mean: metrics.reduce((s, m) => s + m.ms, 0) / metrics.length,
    }))
    const analyzeSingleMetric = vi.fn((metric) => ({ n: 1, mean: metric.ms }))

    // ---- CONFLUENCE.md ----
    analyticsNode.on('metric', (eventOrEvents, context) => {
      if (Array.isArray(eventOrEvents)) {
        // Efficient batch processing
        const metrics = eventOrEvents.map((e) => e.payload)
        return analyzeMetricsBatch(metrics)
      }
      return analyzeSingleMetric(eventOrEvents.payload)
    })
    // ---- end ----

    const payloads = [{ ms: 12 }, { ms: 30 }, { ms: 48 }]
    const batchResult = await analyticsNode.process(payloads.map((payload) => ({ type: 'metric', payload })))
    expect(batchResult).toEqual({ n: 3, mean: 30 })
    expect(analyzeMetricsBatch).toHaveBeenCalledTimes(1)
    // Payloads arrive as the caller's values, in order.
    analyzeMetricsBatch.mock.calls[0][0].forEach((metric, i) => expect(metric).toBe(payloads[i]))

    const single = await analyticsNode.process({ type: 'metric', payload: { ms: 5 } })
    expect(single).toEqual({ n: 1, mean: 5 })
    expect(analyzeSingleMetric).toHaveBeenCalledTimes(1)
    expect(analyzeMetricsBatch).toHaveBeenCalledTimes(1)
  })
})

describe('Coordinated Updates', () => {
  it('updates primary, replica and cache concurrently, each through its own branch', async () => {
    const { createNode, createNodeArray } = initializeHappen()
    const primaryDB = createNode('primary-db')
    const replicaDB = createNode('replica-db')
    const cache = createNode('cache')

    // Each update waits until all three have started: this only finishes when
    // the three flows really run at the same time.
    const started = []
    let allStarted
    const barrier = new Promise((resolve) => {
      allStarted = resolve
    })
    const work = (name) =>
      vi.fn(async (payload) => {
        started.push(name)
        if (started.length === 3) allStarted()
        await barrier
        return { [name]: payload.key }
      })
    const updatePrimary = work('primary')
    const updateReplica = work('replica')
    const invalidateCache = work('cache')

    // ---- CONFLUENCE.md ----
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
    // ---- end ----

    await vi.waitFor(() => expect(started.sort()).toEqual(['cache', 'primary', 'replica']))
    for (const fn of [updatePrimary, updateReplica, invalidateCache]) {
      expect(fn).toHaveBeenCalledTimes(1)
      expect(fn.mock.calls[0][0]).toEqual({ key: 'user:123', value: { name: 'Alice' } })
    }

    const result = await dataNodes.send({ type: 'data.update', payload: { key: 'user:456' } })
    expect(await result.return()).toEqual({
      'primary-db': { primary: 'user:456' },
      'replica-db': { replica: 'user:456' },
      cache: { cache: 'user:456' },
    })
  })
})

describe('No Configuration Needed', () => {
  it('a single event arrives alone, an explicit array arrives as one batch', async () => {
    const { createNode } = initializeHappen()
    const node = createNode('meter')
    const received = []
    node.on('data-point', (eventOrEvents) => {
      received.push(eventOrEvents)
    })

    // ---- CONFLUENCE.md ----
    // Single event
    node.send({ type: 'data-point', payload: { value: 42 } })

    // Batch as explicit array
    node.send([
      { type: 'data-point', payload: { value: 10 } },
      { type: 'data-point', payload: { value: 20 } },
      { type: 'data-point', payload: { value: 30 } },
    ])
    // ---- end ----

    await vi.waitFor(() => expect(received).toHaveLength(2))
    const single = received.find((r) => !Array.isArray(r))
    const batch = received.find((r) => Array.isArray(r))
    expect(single).toMatchObject({ type: 'data-point', payload: { value: 42 } })
    expect(batch.map((e) => e.payload.value)).toEqual([10, 20, 30])
  })
})

describe('Best Practices', () => {
  it('1. Use NodeArray for explicit multi-node operations', () => {
    const { createNode, createNodeArray } = initializeHappen()
    const node1 = createNode('node-1')
    const node2 = createNode('node-2')
    const node3 = createNode('node-3')

    // ---- CONFLUENCE.md ----
    const nodes = createNodeArray([node1, node2, node3])
    // ---- end ----

    expect(nodes.length).toBe(3)
    expect(nodes.nodes.map((n) => n.id)).toEqual(['node-1', 'node-2', 'node-3'])
    expect([...nodes]).toEqual([node1, node2, node3])
  })

  it('2. Check for arrays in handlers that support both', async () => {
    const { createNode } = initializeHappen()
    const node = createNode('both')
    const kinds = []
    node.on('reading', (events, context) => {
      // ---- CONFLUENCE.md (one line added to each branch to observe it) ----
      if (Array.isArray(events)) {
        // Batch processing
        kinds.push(`batch of ${events.length}`)
      } else {
        // Single event processing
        kinds.push(`single ${events.payload}`)
      }
      // ---- end ----
      return kinds.length
    })

    expect(await node.process({ type: 'reading', payload: 'r1' })).toBe(1)
    expect(await node.process([{ type: 'reading' }, { type: 'reading' }])).toBe(2)
    expect(kinds).toEqual(['single r1', 'batch of 2'])
  })

  it('3. Use context.node for node-specific logic', async () => {
    const { createNode, createNodeArray } = initializeHappen()
    const nodes = createNodeArray([createNode('east'), createNode('west')])
    nodes.on('where', (event, context) => {
      // ---- CONFLUENCE.md ----
      const nodeId = context.node.id
      // ---- end ----
      return `${nodeId} handled ${event.type}`
    })

    expect(await nodes.process({ type: 'where' })).toEqual({
      east: 'east handled where',
      west: 'west handled where',
    })
  })

  it('4. Collect results when needed', async () => {
    const { createNode, createNodeArray } = initializeHappen()
    const nodes = createNodeArray([createNode('n1'), createNode('n2')])
    nodes.on('sum', (event, context) => event.payload.a + event.payload.b + context.node.id)
    const event = { type: 'sum', payload: { a: 1, b: 2 } }

    // ---- CONFLUENCE.md ----
    const result = await nodes.send(event)
    const responses = await result.return()
    // ---- end ----

    expect(responses).toEqual({ n1: '3n1', n2: '3n2' })
  })
})
