// The transport seam (lib/transport.js): what the send path promises any transport, checked
// with a fake one that "hosts" the nodes whose ids start with 'far-'.
import { describe, expect, it } from 'vitest'
import { HappenError, initializeHappen } from 'happen'
import { rejection, thrown } from './helpers.mjs'

/** A transport whose nodes answer, one tick later, with what they were sent. */
function fakeTransport({ listed = [] } = {}) {
  const handles = new Map()
  const transport = {
    type: 'fake',
    place: 'a fake place',
    host: null,
    starts: [],
    encoded: 0,
    created: [],
    disposed: [],
    attach(host) {
      this.host = host
    },
    resolve(id) {
      if (!id.startsWith('far-')) return undefined
      if (!handles.has(id)) handles.set(id, this.host.createHandle(id))
      return handles.get(id)
    },
    everyone() {
      return listed.map((id) => this.resolve(id))
    },
    beforeCreate(id) {
      if (id.startsWith('far-')) throw new HappenError('DUPLICATE_NODE', `'${id}' lives in a fake place`)
    },
    nodeCreated(node) {
      this.created.push(node.id)
    },
    nodeDisposed(node) {
      this.disposed.push(node.id)
    },
    encode(input) {
      this.encoded++
      if (!Array.isArray(input) && input.payload && input.payload.refuse)
        throw new HappenError('NOT_SERIALIZABLE', 'refused by the fake')
      return JSON.stringify(input)
    },
    start(delivery) {
      this.starts.push(delivery)
      setImmediate(() => {
        for (const { slot, node } of delivery.slots) {
          const event = JSON.parse(delivery.wire)
          if (event.payload === 'fail')
            delivery.result.settleTarget(slot, { ok: false, step: 'far step', error: new Error(`${node.id} failed`) })
          else
            delivery.result.settleTarget(slot, {
              ok: true,
              value: { by: node.id, payload: event.payload },
              matched: true,
            })
        }
      })
    },
    flushSteps() {},
    ready: () => Promise.resolve(),
    close: () => Promise.resolve(),
  }
  return transport
}

function world(options) {
  const rt = initializeHappen()
  const transport = fakeTransport(options)
  rt._addTransport(transport)
  return { rt, transport }
}

describe('transport seam', () => {
  it('a send to local and far nodes starts the far ones with one start() for the transport, results keyed by id', async () => {
    const { rt, transport } = world()
    const a = rt.createNode('a')
    a.on('ping', (event) => ({ by: 'a', payload: event.payload }))
    const far1 = rt.node('far-1')
    const far2 = rt.node('far-2')
    const nodes = rt.createNodeArray([a, far1, far2])
    const sent = await nodes.send({ type: 'ping', payload: 7 })
    const results = await sent.return()
    expect(results).toEqual({
      a: { by: 'a', payload: 7 },
      'far-1': { by: 'far-1', payload: 7 },
      'far-2': { by: 'far-2', payload: 7 },
    })
    expect(transport.starts).toHaveLength(1)
    expect(transport.encoded).toBe(1)
    const [delivery] = transport.starts
    expect(delivery.slots.map((s) => s.node.id)).toEqual(['far-1', 'far-2'])
    expect(delivery.causal.id).toBe(sent.id)
    expect(delivery.slots.map((s) => s.slot)).toEqual([1, 2])
    expect(delivery.broadcast).toBe(false)
  })

  it('a far target stays running in the history until its transport settles it; failures stay in their entry', async () => {
    const { rt } = world()
    const a = rt.createNode('a')
    a.on('*', () => 'local')
    const sent = await rt.createNodeArray([a, rt.node('far-x')]).send({ type: 'job', payload: 'fail' })
    const settled = await sent.return({ settled: true })
    expect(settled.a).toEqual({ status: 'fulfilled', value: 'local' })
    expect(settled['far-x'].status).toBe('rejected')
    expect(settled['far-x'].reason.message).toBe('far-x failed')
    const branches = sent.trace().branches
    expect(branches.map((b) => [b.node, b.outcome])).toEqual([
      ['a', 'fulfilled'],
      ['far-x', 'rejected'],
    ])
  })

  it("a transport's refusal in encode() rejects the send before any local handler runs", async () => {
    const { rt } = world()
    const a = rt.createNode('a')
    let ran = 0
    a.on('*', () => ran++)
    const error = await rejection(
      rt.createNodeArray([a, rt.node('far-1')]).send({ type: 'x', payload: { refuse: true } }),
    )
    expect(error.code).toBe('NOT_SERIALIZABLE')
    expect(ran).toBe(0)
  })

  it('broadcast reaches the nodes the transport lists, in the same one start()', async () => {
    const { rt, transport } = world({ listed: ['far-a', 'far-b'] })
    const a = rt.createNode('a')
    a.on('*', () => 'a')
    const results = await a.broadcast({ type: 'all', payload: 1 }).return()
    expect(results).toEqual({ a: 'a', 'far-a': { by: 'far-a', payload: 1 }, 'far-b': { by: 'far-b', payload: 1 } })
    expect(transport.starts).toHaveLength(1)
    expect(transport.starts[0].broadcast).toBe(true)
  })

  it('host.receive() runs local flows for an event from elsewhere and reports each target as it ends', async () => {
    const { rt, transport } = world()
    const a = rt.createNode('a')
    const b = rt.createNode('b')
    let release
    a.on('*', (event, context) => ({ a: event.payload, cause: context.causal.causationId }))
    b.on('*', () => new Promise((resolve) => (release = resolve)))
    const ended = []
    const causal = {
      id: 'elsewhere-1',
      sender: 'far-s',
      causationId: null,
      correlationId: 'elsewhere-1',
      path: ['far-s'],
      timestamp: Date.now(),
    }
    const result = transport.host.receive({
      sender: rt.node('far-s'),
      nodes: [a, b],
      input: { type: 'in', payload: 5 },
      causal,
      causeSeq: -1,
      causeBranch: -1,
      batch: null,
      served: { targetDone: (slot) => ended.push(slot), originOf: (slot) => ['o-a', 'o-b'][slot] },
    })
    expect(ended).toEqual([0])
    expect(result.outcome(0)).toEqual({ ok: true, value: { a: 5, cause: null } })
    expect(result.isDone(1)).toBe(false)
    release('b done')
    await new Promise((r) => setImmediate(r))
    expect(ended).toEqual([0, 1])
    expect(result.outcome(1)).toEqual({ ok: true, value: 'b done' })
    expect(rt.trace('elsewhere-1').branches.map((br) => br.node)).toEqual(['a', 'b'])
  })

  it('a send from a flow serving an event from elsewhere hands its origin to the transport', async () => {
    const { rt, transport } = world()
    const a = rt.createNode('a')
    a.on('*', async (event, context) => {
      await null
      return context.node.send('far-next', { type: 'onward' }).then((s) => s.return())
    })
    const causal = {
      id: 'elsewhere-2',
      sender: null,
      causationId: null,
      correlationId: 'elsewhere-2',
      path: [],
      timestamp: Date.now(),
    }
    const ended = []
    let finished
    const served = new Promise((resolve) => (finished = resolve))
    const result = transport.host.receive({
      sender: null,
      nodes: [a],
      input: { type: 'in' },
      causal,
      causeSeq: -1,
      causeBranch: -1,
      batch: null,
      served: {
        targetDone: (slot) => {
          ended.push(slot)
          finished()
        },
        originOf: () => 'origin-of-a',
      },
    })
    await served
    expect(ended).toEqual([0])
    expect(transport.starts).toHaveLength(1)
    expect(transport.starts[0].origin).toBe('origin-of-a')
    expect(transport.starts[0].causal.causationId).toBe('elsewhere-2') // the id it has where it came from
    expect(result.isDone(0)).toBe(true)
  })

  it('handles: on() and dispose() refuse naming where the node lives; createNode of a far id may be refused; created/disposed are told', () => {
    const { rt, transport } = world()
    const handle = rt.node('far-1')
    expect(thrown(() => handle.on('x', () => {})).code).toBe('REMOTE_NODE')
    expect(thrown(() => handle.on('x', () => {})).message).toContain('a fake place')
    expect(thrown(() => handle.dispose()).code).toBe('REMOTE_NODE')
    expect(thrown(() => rt.createNode('far-1')).code).toBe('DUPLICATE_NODE')
    const a = rt.createNode('a')
    a.dispose()
    expect(transport.created).toEqual(['a'])
    expect(transport.disposed).toEqual(['a'])
    expect(thrown(() => rt.node('nowhere')).code).toBe('UNKNOWN_NODE')
  })
})

describe('causality with one store per flow', () => {
  it("a sync handler's scheduled callbacks (timer, microtask, immediate) in a multi-target send know their own node and cause", async () => {
    const rt = initializeHappen()
    const [a, b, c, sink] = ['a', 'b', 'c', 'sink'].map((id) => rt.createNode(id))
    const seen = []
    sink.on('*', (event) => {
      seen.push({
        type: event.type,
        sender: event.context.causal.sender,
        cause: event.context.causal.causationId,
        path: event.context.causal.path,
      })
    })
    const done = []
    for (const node of [a, b, c]) {
      node.on('go', (event, context) => {
        const me = context.node.id
        done.push(
          new Promise((resolve) => setTimeout(() => resolve(context.node.send(sink, { type: `timer-${me}` })), 1)),
        )
        done.push(
          new Promise((resolve) => queueMicrotask(() => resolve(context.node.send(sink, { type: `micro-${me}` })))),
        )
        done.push(
          new Promise((resolve) => setImmediate(() => resolve(rt.node('sink').send({ type: `immediate-${me}` })))),
        )
        return me // sync: the flow ends before any callback runs
      })
    }
    const sent = await rt.createNodeArray([a, b, c]).send({ type: 'go' })
    // Outside any flow again: the caller's own send is a root without a node sender.
    const after = await rt.createNodeArray([sink]).send({ type: 'after' })
    await Promise.all((await Promise.all(done)).map((s) => s.return()))
    await after.return()
    for (const me of ['a', 'b', 'c']) {
      for (const kind of ['timer', 'micro', 'immediate']) {
        const got = seen.find((s) => s.type === `${kind}-${me}`)
        expect(got, `${kind}-${me}`).toEqual({ type: `${kind}-${me}`, sender: me, cause: sent.id, path: [me] })
      }
    }
    expect(seen.find((s) => s.type === 'after')).toEqual({ type: 'after', sender: null, cause: null, path: [] })
  })

  it('a send after awaits, timers and microtasks inside a flow knows its cause and sender; the caller after the send does not', async () => {
    const rt = initializeHappen()
    const [a, b, sink] = ['a', 'b', 'sink'].map((id) => rt.createNode(id))
    const seen = []
    sink.on('*', (event) => seen.push([event.type, event.context.causal.sender, event.context.causal.causationId]))
    const flow = async (event, context) => {
      await null
      await new Promise((r) => setTimeout(r, 1))
      await new Promise((r) => queueMicrotask(r))
      const step = async () => {
        await new Promise((r) => setImmediate(r))
        return (await context.node.send(sink, { type: `late-${context.node.id}` })).return()
      }
      return step
    }
    a.on('go', flow)
    b.on('go', flow)
    const sent = await rt.createNodeArray([a, b]).send({ type: 'go' })
    await a.send(sink, { type: 'outside' })
    await sent.return()
    expect(seen).toEqual(
      expect.arrayContaining([
        ['late-a', 'a', sent.id],
        ['late-b', 'b', sent.id],
        ['outside', 'a', null],
      ]),
    )
    expect(seen).toHaveLength(3)
  })
})
