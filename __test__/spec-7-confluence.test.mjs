// SPEC §7 — Confluence: node arrays, fan-out, batches.
import vm from 'node:vm'
import { describe, expect, it, vi } from 'vitest'
import { initializeHappen } from 'happen'
import { deferred, traceEvents } from './helpers.mjs'

function runtimeWith(ids) {
  const rt = initializeHappen()
  const nodes = ids.map((id) => rt.createNode(id))
  return { rt, nodes, byId: Object.fromEntries(nodes.map((n) => [n.id, n])) }
}

describe('§7 createNodeArray', () => {
  it('is iterable and has .length and .nodes', () => {
    const { rt, nodes } = runtimeWith(['a', 'b', 'c'])
    const array = rt.createNodeArray(nodes)
    expect(array.length).toBe(3)
    expect(array.nodes).toEqual(nodes)
    expect([...array]).toEqual(nodes)
    const ids = []
    for (const n of array) ids.push(n.id)
    expect(ids).toEqual(['a', 'b', 'c'])
  })

  it.each([
    ['an empty array', () => []],
    ['not an array', () => 'a'],
    ['undefined', () => undefined],
    ['a repeated node', ({ nodes }) => [nodes[0], nodes[1], nodes[0]]],
    ['a non-node element', ({ nodes }) => [nodes[0], 42]],
    ['a null element', ({ nodes }) => [nodes[0], null]],
  ])('refuses %s with a TypeError', (_label, input) => {
    const world = runtimeWith(['a', 'b'])
    expect(() => world.rt.createNodeArray(input(world))).toThrow(TypeError)
  })

  it('refuses two nodes with the same id from different runtimes', () => {
    const one = runtimeWith(['same'])
    const two = runtimeWith(['same'])
    expect(() => one.rt.createNodeArray([one.nodes[0], two.nodes[0]])).toThrow(TypeError)
  })
})

describe('§7 nodes.on', () => {
  it('registers on every node; the handler sees the running node in context.node', async () => {
    const { rt, nodes, byId } = runtimeWith(['a', 'b', 'c'])
    const array = rt.createNodeArray(nodes)
    array.on('who', (event, context) => context.node.id)
    // Each node answers on its own, not only through the array.
    expect(await byId.b.process({ type: 'who' })).toBe('b')
    expect(await byId.c.send({ type: 'who' }).return()).toBe('c')
    expect(await (await array.send({ type: 'who' })).return()).toEqual({ a: 'a', b: 'b', c: 'c' })
  })

  it('returns one remover for all nodes', async () => {
    const { rt, nodes } = runtimeWith(['a', 'b'])
    const array = rt.createNodeArray(nodes)
    const handler = vi.fn(() => 'hit')
    const remove = array.on('x', handler)
    expect(typeof remove).toBe('function')
    remove()
    expect(await array.process({ type: 'x' })).toEqual({ a: null, b: null })
    expect(handler).not.toHaveBeenCalled()
  })
})

describe('§7 nodes.send fan-out', () => {
  it('every node runs its own flow concurrently', async () => {
    const { rt, nodes } = runtimeWith(['a', 'b', 'c'])
    const array = rt.createNodeArray(nodes)
    // No flow can finish before all three have started.
    let started = 0
    const all = deferred()
    array.on('job', async (event, context) => {
      if (++started === 3) all.resolve()
      await all.promise
      return context.node.id
    })
    const result = await array.send({ type: 'job' })
    expect(await result.return({ timeout: 5_000 })).toEqual({ a: 'a', b: 'b', c: 'c' })
  })

  it('divergent flows: each node continues with its own next function', async () => {
    const { rt, nodes } = runtimeWith(['left', 'right'])
    const array = rt.createNodeArray(nodes)
    function goLeft(event, context) {
      return `${context.node.id} went left`
    }
    function goRight(event, context) {
      return () => `${context.node.id} went right`
    }
    array.on('fork', (event, context) => (context.node.id === 'left' ? goLeft : goRight))
    const result = await array.send({ type: 'fork' })
    expect(await result.return()).toEqual({ left: 'left went left', right: 'right went right' })
  })

  it('one node cannot change the event the other nodes see', async () => {
    const { rt, nodes } = runtimeWith(['writer', 'reader'])
    const array = rt.createNodeArray(nodes)
    const seen = {}
    array.on('shared', (event, context) => {
      if (context.node.id === 'writer') {
        event.type = 'rewritten'
        expect(() => {
          event.context.causal.sender = 'forged'
        }).toThrow(TypeError)
      }
      seen[context.node.id] = event.context.causal
      return [event.type, event.context.causal.sender]
    })
    const results = await array.send({ type: 'shared' }).return()
    expect(results).toEqual({ writer: ['rewritten', null], reader: ['shared', null] })
    expect(seen.writer).toBe(seen.reader)
  })

  it('nodes.send([e1, e2]) gives each node the batch', async () => {
    const { rt, nodes } = runtimeWith(['a', 'b'])
    const array = rt.createNodeArray(nodes)
    array.on('p', (events, context) => `${context.node.id}:${events.map((e) => e.payload).join(',')}`)
    const result = await array.send([
      { type: 'p', payload: 1 },
      { type: 'p', payload: 2 },
    ])
    expect(await result.return()).toEqual({ a: 'a:1,2', b: 'b:1,2' })
  })
})

describe('§7 batches', () => {
  it('are delivered as one array, in the order sent, to one handler call', async () => {
    const {
      nodes: [n],
    } = runtimeWith(['sink'])
    const handler = vi.fn((events) => events.map((e) => e.payload))
    n.on('tick', handler)
    const payloads = Array.from({ length: 50 }, (_, i) => ({ i }))
    const result = await n.process(payloads.map((payload) => ({ type: 'tick', payload })))
    expect(handler).toHaveBeenCalledTimes(1)
    expect(result).toHaveLength(50)
    result.forEach((p, i) => expect(p).toBe(payloads[i]))
  })

  it('the batch context has receivedAt, node and one { causal } per event, in order', async () => {
    const {
      nodes: [n],
    } = runtimeWith(['sink'])
    let seen
    n.on('tick', (events, context) => {
      seen = { events, context }
    })
    const before = Date.now()
    const result = await n.send([
      { type: 'tick', payload: 0 },
      { type: 'tick', payload: 1 },
      { type: 'tick', payload: 2 },
    ])
    await result.return()
    const after = Date.now()
    const { context } = seen
    expect(typeof context.receivedAt).toBe('number')
    expect(context.receivedAt).toBeGreaterThanOrEqual(before)
    expect(context.receivedAt).toBeLessThanOrEqual(after)
    expect(context.node).toEqual({ id: 'sink' })
    expect(context.events).toHaveLength(3)
    expect(context.events.map((e) => e.causal.id)).toEqual(result.ids)
    for (const { causal } of context.events) expect(causal.sender).toBe('sink')
  })

  it('members of a batch sent from outside any handler are root events', async () => {
    const {
      nodes: [n],
    } = runtimeWith(['sink'])
    let ctx
    n.on('tick', (events, context) => {
      ctx = context
    })
    await n.process([{ type: 'tick' }, { type: 'tick' }, { type: 'tick' }])
    for (const { causal } of ctx.events) {
      expect(causal.causationId).toBeNull()
      // API.md: the correlationId of a root event is its own id.
      expect(causal.correlationId).toBe(causal.id)
    }
  })

  it('members of a batch sent from a flow are all caused by the handled event', async () => {
    const { byId } = runtimeWith(['src', 'sink'])
    let ctx
    byId.sink.on('tick', (events, context) => {
      ctx = context
    })
    byId.src.on('go', () => byId.src.send(byId.sink, [{ type: 'tick' }, { type: 'tick' }]).return())
    const go = await byId.src.send({ type: 'go' })
    await go.return()
    for (const { causal } of ctx.events) {
      expect(causal).toMatchObject({ causationId: go.id, correlationId: go.id, sender: 'src' })
    }
  })

  it('each event of a batch keeps its own causal context', async () => {
    const {
      nodes: [n],
    } = runtimeWith(['sink'])
    let ctx
    n.on('tick', (events, context) => {
      ctx = context
    })
    await n.process([
      { type: 'tick', correlationId: 'corr-a' },
      { type: 'tick', correlationId: 'corr-b', causationId: 'cause-b' },
    ])
    expect(ctx.events[0].causal).toMatchObject({ correlationId: 'corr-a', causationId: null })
    expect(ctx.events[1].causal).toMatchObject({ correlationId: 'corr-b', causationId: 'cause-b' })
  })

  it('a batch is one flow: a returned function gets the same array and context', async () => {
    const {
      nodes: [n],
    } = runtimeWith(['sink'])
    const seen = []
    n.on('tick', (events, context) => {
      seen.push([events, context])
      return function sum(evs, ctx) {
        seen.push([evs, ctx])
        return evs.reduce((s, e) => s + e.payload, 0)
      }
    })
    expect(
      await n.process([
        { type: 'tick', payload: 2 },
        { type: 'tick', payload: 3 },
      ]),
    ).toBe(5)
    expect(seen[1][0]).toBe(seen[0][0])
    expect(seen[1][1]).toBe(seen[0][1])
  })

  it('a handler receives a batch only when its pattern matches every event in it', async () => {
    const {
      nodes: [n],
    } = runtimeWith(['sink'])
    const orders = vi.fn(() => 'orders')
    const all = vi.fn(() => 'all')
    n.on('order.*', orders)
    const mixed = [{ type: 'order.created' }, { type: 'payment.created' }]
    expect(await n.process(mixed)).toBeNull()
    expect(orders).not.toHaveBeenCalled()

    expect(await n.process([{ type: 'order.created' }, { type: 'order.shipped' }])).toBe('orders')
    expect(orders).toHaveBeenCalledTimes(1)

    n.on('*', all)
    expect(await n.process(mixed)).toBe('all')
    expect(all.mock.calls[0][0].map((e) => e.type)).toEqual(['order.created', 'payment.created'])
    expect(orders).toHaveBeenCalledTimes(1)
  })

  it("an event sent from a batch flow is caused by the batch's first event and traced under the batch", async () => {
    const { rt, byId } = runtimeWith(['sink', 'audit'])
    let auditCausal
    byId.audit.on('batch.seen', (event) => {
      auditCausal = event.context.causal
    })
    byId.sink.on('tick', async (events, context) => {
      await new Promise((r) => setTimeout(r, 2))
      await byId.sink.send(byId.audit, { type: 'batch.seen', payload: events.length }).return()
      return context.events.map((e) => e.causal.id)
    })
    const result = await byId.sink.send([{ type: 'tick' }, { type: 'tick' }])
    const memberIds = await result.return()
    expect(auditCausal.causationId).toBe(memberIds[0])
    expect(auditCausal.correlationId).toBe(memberIds[0])
    expect(auditCausal.sender).toBe('sink')

    const events = traceEvents(rt.trace(result.id))
    const batch = events.find((e) => e.batch)
    expect(batch.batch).toEqual({ size: 2, ids: memberIds })
    const branch = batch.branches.find((b) => b.node === 'sink')
    expect(branch.children.map((c) => c.type)).toEqual(['batch.seen'])
  })
})

describe('§7 no Array.prototype patching', () => {
  it("Array.prototype has exactly the properties of a fresh realm's", () => {
    const fresh = vm.runInNewContext('Object.getOwnPropertyNames(Array.prototype).sort()')
    expect(Object.getOwnPropertyNames(Array.prototype).sort()).toEqual([...fresh])
    expect([].send).toBeUndefined()
    expect([].on).toBeUndefined()
  })

  it('send(array of nodes, event) is the way to address a plain array', async () => {
    const { rt, nodes } = runtimeWith(['a', 'b', 'from'])
    const [a, b, from] = nodes
    rt.createNodeArray([a, b]).on('x', (event, context) => context.node.id)
    expect(await from.send([a, b], { type: 'x' }).return()).toEqual({ a: 'a', b: 'b' })
  })
})

describe('§7 a batch member naming its own cause', () => {
  it("joins that cause's correlation, as a single event would", async () => {
    const { rt, nodes } = runtimeWith(['a'])
    const [a] = nodes
    const contexts = []
    a.on('*', (events, context) => {
      if (Array.isArray(events)) contexts.push(context.events.map((e) => e.causal))
    })
    const cause = await a.send({ type: 'cause', correlationId: 'order-7' })
    await a.send([{ type: 'b' }, { type: 'b', causationId: cause.id }]).return()
    const [first, second] = contexts[0]
    expect(first.correlationId).toBe(first.id)
    expect(second).toMatchObject({ causationId: cause.id, correlationId: 'order-7' })
    expect(rt.trace('order-7')).not.toBeNull()
  })
})
