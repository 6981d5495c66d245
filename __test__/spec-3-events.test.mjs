// SPEC §3 — Events and causal context.
import { describe, expect, it, vi } from 'vitest'
import { initializeHappen } from 'happen'
import { thrown } from './helpers.mjs'

/** Give any asynchronous delivery a chance to happen. */
async function settle() {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 2))
}

/**
 * A runtime with nodes a, b, c. Each node has one handler for every type: it
 * records the delivery, then runs the behaviour a test set with when(node, type, fn).
 */
function world(ids = ['a', 'b', 'c']) {
  const rt = initializeHappen()
  const nodes = Object.fromEntries(ids.map((id) => [id, rt.createNode(id)]))
  const seen = []
  const behaviours = {}
  for (const n of Object.values(nodes)) {
    n.on('*', (event, context) => {
      seen.push({ node: context.node.id, event, context })
      const fn = Array.isArray(event) ? undefined : behaviours[`${context.node.id}/${event.type}`]
      return fn ? fn(event, context) : undefined
    })
  }
  const when = (node, type, fn) => {
    behaviours[`${node.id}/${type}`] = fn
  }
  const of = (type) => seen.filter((s) => !Array.isArray(s.event) && s.event.type === type)
  return { rt, ...nodes, seen, of, when }
}

const CAUSAL_KEYS = ['causationId', 'correlationId', 'id', 'path', 'sender', 'timestamp']

describe('§3 what a caller passes', () => {
  it('accepts { type }, { type, payload } and explicit causationId / correlationId', async () => {
    const { a, of } = world()
    await a.process({ type: 'bare' })
    await a.process({ type: 'with-payload', payload: { n: 1 } })
    await a.process({ type: 'linked', payload: 1, causationId: 'cause-1', correlationId: 'corr-1' })
    expect(of('bare')).toHaveLength(1)
    expect(of('with-payload')[0].event.payload).toEqual({ n: 1 })
    expect(of('linked')[0].event.context.causal).toMatchObject({ causationId: 'cause-1', correlationId: 'corr-1' })
  })

  const invalid = [
    ['a missing type', { payload: 1 }, /type/],
    ['an empty type', { type: '' }, /type/],
    ['a non-string type', { type: 42 }, /type/],
    ['null', null, /event/],
    ['a string', 'order.created', /event/],
    ['a number', 42, /event/],
    ['undefined', undefined, /event/],
    ['a function', () => ({ type: 'x' }), /event/],
  ]

  it.each(invalid)(
    'node.send refuses %s synchronously with a TypeError naming the field, delivering nothing',
    async (_label, bad, field) => {
      const { a, b, seen } = world()
      const error = thrown(() => a.send(bad))
      expect(error).toBeInstanceOf(TypeError)
      expect(error.message).toMatch(field)
      expect(() => a.send(b, bad)).toThrow(TypeError)
      await settle()
      expect(seen).toEqual([])
    },
  )

  it.each(invalid)('a batch containing %s is refused whole, delivering nothing', async (_label, bad, field) => {
    const { a, seen } = world()
    const error = thrown(() => a.send([{ type: 'good' }, bad]))
    expect(error).toBeInstanceOf(TypeError)
    expect(error.message).toMatch(field)
    await settle()
    expect(seen).toEqual([])
  })

  it.each(invalid)('nodes.send and broadcast refuse %s with a TypeError, delivering nothing', async (_label, bad) => {
    const { rt, a, b, seen } = world()
    const nodes = rt.createNodeArray([a, b])
    expect(() => nodes.send(bad)).toThrow(TypeError)
    expect(() => a.broadcast(bad)).toThrow(TypeError)
    await settle()
    expect(seen).toEqual([])
  })

  it.each(invalid)('process rejects %s with the same TypeError, delivering nothing', async (_label, bad, field) => {
    const { a, seen } = world()
    let pending
    expect(() => {
      pending = a.process(bad)
    }).not.toThrow()
    const error = await pending.then(
      () => null,
      (e) => e,
    )
    expect(error).toBeInstanceOf(TypeError)
    expect(error.message).toMatch(field)
    await settle()
    expect(seen).toEqual([])
  })

  it.each([
    ['causationId', { type: 'x', causationId: 42 }],
    ['causationId', { type: 'x', causationId: '' }],
    ['correlationId', { type: 'x', correlationId: {} }],
  ])('a %s that is not a non-empty string is refused with a TypeError naming it', async (field, bad) => {
    const { a, seen } = world()
    const error = thrown(() => a.send(bad))
    expect(error).toBeInstanceOf(TypeError)
    expect(error.message).toContain(field)
    await settle()
    expect(seen).toEqual([])
  })

  it('the TypeError for a bad type names event.type', () => {
    const { a } = world()
    expect(thrown(() => a.send({ type: '' })).message).toContain('event.type')
    expect(thrown(() => a.send({ payload: {} })).message).toContain('event.type')
    expect(thrown(() => a.send({ type: ['x'] })).message).toContain('event.type')
  })
})

describe('§3 what a handler receives', () => {
  it('event = { type, payload, context: { causal } } with every causal field', async () => {
    const { a, of } = world()
    const payload = { value: 1 }
    const before = Date.now()
    await a.process({ type: 'shape', payload })
    const after = Date.now()
    const { event } = of('shape')[0]
    expect(event.type).toBe('shape')
    expect(event.payload).toBe(payload)
    expect(Object.keys(event.context.causal).sort()).toEqual(expect.arrayContaining(CAUSAL_KEYS))
    const { causal } = event.context
    expect(typeof causal.id).toBe('string')
    expect(causal.id.length).toBeGreaterThan(0)
    expect(Array.isArray(causal.path)).toBe(true)
    expect(typeof causal.timestamp).toBe('number')
    expect(causal.timestamp).toBeGreaterThanOrEqual(before)
    expect(causal.timestamp).toBeLessThanOrEqual(after)
  })

  it('every event gets a unique id, batch members included', async () => {
    const { a, b, rt, seen } = world()
    await a.process({ type: 'one' })
    await a.process({ type: 'one' })
    await a.send(b, { type: 'two' }).return()
    await rt
      .createNodeArray([a, b])
      .send({ type: 'three' })
      .then((r) => r.return())
    await a.process([{ type: 'four' }, { type: 'four' }, { type: 'four' }])
    const ids = []
    for (const s of seen) {
      if (Array.isArray(s.event)) ids.push(...s.context.events.map((e) => e.causal.id))
      else if (s.event.type !== 'three' || s.node === 'a') ids.push(s.event.context.causal.id)
    }
    expect(ids).toHaveLength(7)
    expect(new Set(ids).size).toBe(7)
  })

  it('event ids are unique across runtimes too', async () => {
    const one = world()
    const two = world()
    const ids = []
    for (let i = 0; i < 3; i++) {
      ids.push((await one.a.send({ type: 'x' })).id, (await two.a.send({ type: 'x' })).id)
    }
    expect(new Set(ids).size).toBe(6)
  })

  it('a root event has causationId null and a correlationId of its own', async () => {
    const { a, of } = world()
    await a.process({ type: 'root-1' })
    await a.process({ type: 'root-2' })
    const c1 = of('root-1')[0].event.context.causal
    const c2 = of('root-2')[0].event.context.causal
    expect(c1.causationId).toBeNull()
    expect(c1.correlationId).toBe(c1.id) // API.md: a root event's correlationId is its own id
    expect(c1.correlationId).not.toBe(c2.correlationId)
  })

  it("the payload is the caller's value, not a copy", async () => {
    const { a, b, c, rt, of } = world()
    class Money {
      constructor(n) {
        this.n = n
      }
    }
    const payload = { amount: new Money(5), callback: () => 'fn', big: 10n, when: new Date(0) }
    await a.process({ type: 'p1', payload })
    await a.send(b, { type: 'p2', payload }).return()
    await (await rt.createNodeArray([a, c]).send({ type: 'p3', payload })).return()
    expect(of('p1')[0].event.payload).toBe(payload)
    expect(of('p2')[0].event.payload).toBe(payload)
    for (const s of of('p3')) expect(s.event.payload).toBe(payload)
    expect(of('p1')[0].event.payload.amount).toBeInstanceOf(Money)
  })
})

describe('§3 sender', () => {
  it('outside any handler: node.send(e) has the node as sender, path ending with it', async () => {
    const { a, of } = world()
    await (await a.send({ type: 'self' })).return()
    const causal = of('self')[0].event.context.causal
    expect(causal.sender).toBe('a')
    expect(causal.path.at(-1)).toBe('a')
  })

  it('outside any handler: node.send(target, e) has the sending node as sender', async () => {
    const { a, b, of } = world()
    await a.send(b, { type: 'to-b' }).return()
    const [delivery] = of('to-b')
    expect(delivery.node).toBe('b')
    expect(delivery.event.context.causal.sender).toBe('a')
    expect(delivery.event.context.causal.path.at(-1)).toBe('a')
  })

  it('outside any handler: nodes.send has sender null, node.broadcast the node', async () => {
    const { rt, a, b, of } = world()
    await (await rt.createNodeArray([a, b]).send({ type: 'fan' })).return()
    await (await a.broadcast({ type: 'all' })).return()
    expect(of('fan')).toHaveLength(2)
    for (const s of of('fan')) expect(s.event.context.causal.sender).toBeNull()
    expect(of('all')).toHaveLength(3)
    for (const s of of('all')) expect(s.event.context.causal.sender).toBe('a')
  })

  it('inside a handler every form of send has the running node as sender', async () => {
    const { rt, a, b, c, of, when } = world()
    const pair = rt.createNodeArray([b, c])
    when(a, 'go', async () => {
      await a.send({ type: 'f1' }).return()
      await a.send(b, { type: 'f2' }).return()
      await b.send(c, { type: 'f3' }).return() // another node's send, still from a's flow
      await pair.send({ type: 'f4' }).then((r) => r.return())
      await a.send('c', { type: 'f5' }).return()
      await a.send([b, c], { type: 'f6' }).return()
      await b.broadcast({ type: 'f7' }).then((r) => r.return())
      return 'sent'
    })
    expect(await a.process({ type: 'go' })).toBe('sent')
    for (const type of ['f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7']) {
      expect(of(type).length, type).toBeGreaterThan(0)
      for (const s of of(type)) expect(s.event.context.causal.sender, type).toBe('a')
    }
  })
})

describe('§3 causality is automatic', () => {
  it('an event sent from a handler is caused by the handled event', async () => {
    const { a, b, of, when } = world()
    when(a, 'order.placed', () => a.send(b, { type: 'order.charge' }).return())
    const result = await a.send({ type: 'order.placed' })
    await result.return()
    const parent = of('order.placed')[0].event.context.causal
    const child = of('order.charge')[0].event.context.causal
    expect(parent.id).toBe(result.id)
    expect(child.causationId).toBe(parent.id)
    expect(child.correlationId).toBe(parent.correlationId)
    expect(child.sender).toBe('a')
  })

  it('also after an await, and from a later function of the flow', async () => {
    const { a, b, c, of, when } = world()
    when(a, 'start', async () => {
      await new Promise((r) => setTimeout(r, 5))
      await a.send(b, { type: 'after-await' }).return()
      return async function later() {
        await new Promise((r) => setTimeout(r, 5))
        await a.send(c, { type: 'from-later-step' }).return()
      }
    })
    await a.process({ type: 'start' })
    const start = of('start')[0].event.context.causal
    for (const type of ['after-await', 'from-later-step']) {
      const causal = of(type)[0].event.context.causal
      expect(causal.causationId, type).toBe(start.id)
      expect(causal.correlationId, type).toBe(start.correlationId)
    }
  })

  it('a chain keeps its correlationId and extends its path', async () => {
    const { a, b, c, of, when } = world()
    when(a, 'step-1', () => a.send(b, { type: 'step-2' }).return())
    when(b, 'step-2', () => b.send(c, { type: 'step-3' }).return())
    await a.process({ type: 'step-1', correlationId: 'order-42' })
    const [s1, s2, s3] = ['step-1', 'step-2', 'step-3'].map((t) => of(t)[0].event.context.causal)
    expect([s1.correlationId, s2.correlationId, s3.correlationId]).toEqual(['order-42', 'order-42', 'order-42'])
    expect(s2.causationId).toBe(s1.id)
    expect(s3.causationId).toBe(s2.id)
    expect(s3.sender).toBe('b')
    expect(s3.path.at(-1)).toBe('b')
    // Each path extends its cause's path.
    expect(s2.path.slice(0, s1.path.length)).toEqual(s1.path)
    expect(s3.path.slice(0, s2.path.length)).toEqual(s2.path)
    expect(s3.path.indexOf('a')).toBeGreaterThanOrEqual(0)
    expect(s3.path.indexOf('a')).toBeLessThan(s3.path.lastIndexOf('b'))
  })

  it('concurrent flows interleaving awaits keep their own causes', async () => {
    const { a, b, of, when } = world()
    when(a, 'job', async (event) => {
      // Finish in the reverse order of arrival.
      await new Promise((r) => setTimeout(r, 5 * (10 - event.payload)))
      await a.send(b, { type: 'job.done', payload: event.payload }).return()
    })
    await Promise.all(Array.from({ length: 10 }, (_, i) => a.process({ type: 'job', payload: i })))
    const jobs = new Map(of('job').map((s) => [s.event.payload, s.event.context.causal]))
    expect(of('job.done')).toHaveLength(10)
    for (const { event } of of('job.done')) {
      expect(event.context.causal.causationId).toBe(jobs.get(event.payload).id)
      expect(event.context.causal.correlationId).toBe(jobs.get(event.payload).correlationId)
    }
  })

  it('sending after the flow has finished is no longer caused by it', async () => {
    const { a, b, of } = world()
    await a.process({ type: 'kick' })
    await a.send(b, { type: 'later' }).return()
    expect(of('later')[0].event.context.causal.causationId).toBeNull()
  })
})

describe('§3 a fan-out is one event', () => {
  it('every node sees the same causal id, each with its own context.node', async () => {
    const { rt, a, b, c, of } = world()
    const result = await rt.createNodeArray([a, b, c]).send({ type: 'fanned', payload: 1 })
    await result.return()
    const deliveries = of('fanned')
    expect(deliveries.map((d) => d.node).sort()).toEqual(['a', 'b', 'c'])
    expect(new Set(deliveries.map((d) => d.event.context.causal.id))).toEqual(new Set([result.id]))
    expect(deliveries.map((d) => d.context.node.id).sort()).toEqual(['a', 'b', 'c'])
    expect(new Set(deliveries.map((d) => d.context)).size).toBe(3)
  })
})

describe('§3 causal context of the handler', () => {
  it("context.causal is the event's causal context", async () => {
    const { a, of } = world()
    await a.process({ type: 'ctx' })
    const { event, context } = of('ctx')[0]
    expect(context.causal).toEqual(event.context.causal)
    expect(context.node).toEqual({ id: 'a' })
  })

  it('a handler is called once with (event, context)', async () => {
    const rt = initializeHappen()
    const n = rt.createNode('spied')
    const handler = vi.fn(() => 'r')
    n.on('x', handler)
    expect(await n.process({ type: 'x', payload: 3 })).toBe('r')
    expect(handler).toHaveBeenCalledTimes(1)
    const [event, context] = handler.mock.calls[0]
    expect(event).toMatchObject({ type: 'x', payload: 3 })
    expect(context.node.id).toBe('spied')
  })
})

describe('§3 a caller-named cause: its correlation is inherited', () => {
  it('outside a handler, an event naming a cause with a foreign correlation gets that correlation', async () => {
    const rt = initializeHappen()
    const a = rt.createNode('a')
    const seen = []
    a.on('*', (event) => void seen.push(event.context.causal))
    const first = await a.send({ type: 'one', correlationId: 'ext-corr' })
    const second = await a.send({ type: 'two', causationId: first.id })
    expect(seen[1]).toMatchObject({ causationId: first.id, correlationId: 'ext-corr' })
    await second.return()
    expect(rt.trace('ext-corr').branches[0].outcome).toBe('fulfilled')
    expect(rt.trace(second.id).branches[0].outcome).toBe('fulfilled')
  })

  it('inside a handler, the named cause wins over the running flow, for the handler and the trace alike', async () => {
    const rt = initializeHappen()
    const a = rt.createNode('a')
    const b = rt.createNode('b')
    const first = await b.send({ type: 'one', correlationId: 'ext-corr' })
    let sent
    a.on('go', () => {
      sent = a.send(b, { type: 'two', causationId: first.id })
    })
    const received = []
    b.on('two', (event) => void received.push(event.context.causal))
    await a.send({ type: 'go' }).return()
    const result = await sent
    expect(received[0]).toMatchObject({ causationId: first.id, correlationId: 'ext-corr' })
    expect(rt.trace(result.id).correlationId).toBe('ext-corr')
  })
})
