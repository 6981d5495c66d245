// SPEC §6 — Sending, processing, results.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, vi } from 'vitest'
import { HappenError, initializeHappen, trace } from 'happen'
import { deferred, thrown, rejection } from './helpers.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** A runtime with nodes a, b, c that record what they receive. */
function world(ids = ['a', 'b', 'c']) {
  const rt = initializeHappen()
  const nodes = Object.fromEntries(ids.map((id) => [id, rt.createNode(id)]))
  const seen = []
  const record = (n, fn = (event, context) => `${context.node.id} got ${event.type}`) =>
    n.on('*', (event, context) => {
      seen.push({ node: context.node.id, event })
      return fn(event, context)
    })
  return { rt, ...nodes, seen, record }
}

/** Whether a promise has settled after the pending I/O and timers have run. */
async function isSettled(promise) {
  let settled = false
  promise.then(
    () => {
      settled = true
    },
    () => {
      settled = true
    },
  )
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 2))
  return settled
}

describe('§6 node.send targets', () => {
  it('node.send(event) delivers to the node itself', async () => {
    const { a, b, seen, record } = world()
    record(a)
    record(b)
    expect(await (await a.send({ type: 'self' })).return()).toBe('a got self')
    expect(seen.map((s) => s.node)).toEqual(['a'])
  })

  it.each([
    ['a node', (w) => w.b],
    ['a node id', () => 'b'],
    ['a runtime handle', (w) => w.rt.node('b')],
  ])('node.send(target, event) delivers to %s', async (_label, target) => {
    const w = world()
    w.record(w.a)
    w.record(w.b)
    expect(await (await w.a.send(target(w), { type: 'hop' })).return()).toBe('b got hop')
    expect(w.seen.map((s) => [s.node, s.event.context.causal.sender])).toEqual([['b', 'a']])
  })

  it.each([
    ['a NodeArray', (w) => w.rt.createNodeArray([w.b, w.c])],
    ['an array of nodes', (w) => [w.b, w.c]],
  ])('node.send(target, event) delivers to every node of %s', async (_label, target) => {
    const w = world()
    for (const n of [w.a, w.b, w.c]) w.record(n)
    const result = await w.a.send(target(w), { type: 'hop' })
    expect(await result.return()).toEqual({ b: 'b got hop', c: 'c got hop' })
    expect(w.seen.map((s) => s.node).sort()).toEqual(['b', 'c'])
    for (const s of w.seen) expect(s.event.context.causal.sender).toBe('a')
  })

  it('node.send(target, batch) delivers the batch to the target', async () => {
    const { a, b, record } = world()
    record(b, (events) => events.map((e) => e.payload))
    const result = await a.send(b, [
      { type: 'p', payload: 1 },
      { type: 'p', payload: 2 },
    ])
    expect(await result.return()).toEqual([1, 2])
  })

  it('an unknown node id is an UNKNOWN_NODE error thrown synchronously, delivering nothing', async () => {
    const { a, b, seen, record } = world()
    record(a)
    record(b)
    const error = thrown(() => a.send('nobody', { type: 'x' }))
    expect(error).toBeInstanceOf(HappenError)
    expect(error.code).toBe('UNKNOWN_NODE')
    expect(error.message).toContain('nobody')
    await isSettled(Promise.resolve())
    expect(seen).toEqual([])
  })
})

describe('§6 what send returns', () => {
  it('a Promise of a result with id, ids, return() and trace()', async () => {
    const { a, record } = world()
    record(a)
    const pending = a.send({ type: 'x' })
    expect(pending).toBeInstanceOf(Promise)
    const result = await pending
    expect(typeof result.id).toBe('string')
    expect(result.ids).toEqual([result.id])
    expect(typeof result.return).toBe('function')
    expect(typeof result.trace).toBe('function')
    expect(await result.return()).toBe('a got x')
  })

  it('a batch result lists every event id, the first as id', async () => {
    const { a, seen, record } = world()
    record(a, () => 'batch')
    const result = await a.send([{ type: 'x' }, { type: 'y' }, { type: 'z' }])
    expect(await result.return()).toBe('batch')
    expect(result.ids).toHaveLength(3)
    expect(new Set(result.ids).size).toBe(3)
    expect(result.id).toBe(result.ids[0])
    expect(seen).toHaveLength(1)
  })

  it('.return() is callable on the returned promise directly', async () => {
    const { a, b, record } = world()
    record(b)
    expect(await a.send(b, { type: 'direct' }).return()).toBe('b got direct')
    expect(await a.send(b, { type: 'direct' }).return({ settled: true })).toEqual({
      b: { status: 'fulfilled', value: 'b got direct' },
    })
  })

  it('the promise settles once the target has the event; return() once its flow has finished', async () => {
    const { a, record } = world()
    const gate = deferred()
    const started = vi.fn()
    record(a, async () => {
      started()
      await gate.promise
      return 'finished'
    })
    const result = await a.send({ type: 'slow' })
    const returned = result.return()
    expect(await isSettled(returned)).toBe(false)
    expect(started).toHaveBeenCalledTimes(1)
    gate.resolve()
    expect(await returned).toBe('finished')
  })

  it('return() can be called more than once and gives the same result', async () => {
    const { a, record } = world()
    record(a, () => ({ n: 1 }))
    const result = await a.send({ type: 'x' })
    expect(await result.return()).toEqual({ n: 1 })
    expect(await result.return()).toEqual({ n: 1 })
  })
})

describe('§6 return(options) and trace(id) validate their arguments', () => {
  it.each([
    ['settled not a boolean', { settled: 'yes' }],
    ['timeout zero', { timeout: 0 }],
    ['timeout negative', { timeout: -5 }],
    ['timeout infinite', { timeout: Infinity }],
    ['timeout NaN', { timeout: NaN }],
    ['timeout a string', { timeout: '100' }],
    ['an unknown option', { retries: 3 }],
    ['a number', 42],
    ['a string', 'settled'],
  ])('return() rejects %s with a TypeError', async (_label, options) => {
    const { a, record } = world()
    record(a)
    const result = await a.send({ type: 'x' })
    let returned
    expect(() => {
      returned = result.return(options)
    }).not.toThrow()
    expect(await rejection(returned)).toBeInstanceOf(TypeError)
  })

  it('return() accepts { settled } and { timeout } together', async () => {
    const { a, record } = world()
    record(a)
    const result = await a.send({ type: 'x' })
    expect(await result.return({ settled: false, timeout: 1000 })).toBe('a got x')
  })

  it.each([42, null, undefined, { id: 'x' }])('trace(%s) is a TypeError', (id) => {
    const { rt } = world()
    expect(() => rt.trace(id)).toThrow(TypeError)
    expect(() => trace(id)).toThrow(TypeError)
  })
})

describe('§6 result.return() values', () => {
  it("one target: the flow's result; null when no handler matched; undefined when the flow ended with undefined", async () => {
    const { a, b, c, record } = world()
    record(a, () => ({ ok: 1 }))
    b.on('other', () => 'never')
    record(c, () => undefined)
    expect(await a.send({ type: 'x' }).return()).toEqual({ ok: 1 })
    expect(await a.send(b, { type: 'x' }).return()).toBeNull()
    const fromC = await a.send(c, { type: 'x' }).return()
    expect(fromC).toBeUndefined()
  })

  it('several targets: a plain object keyed by node id, unmatched nodes null', async () => {
    const { rt, a, b, c, record } = world()
    record(a, () => 1)
    record(b, () => undefined)
    c.on('other', () => 'never')
    const result = await rt.createNodeArray([a, b, c]).send({ type: 'x' })
    const values = await result.return()
    expect(Object.getPrototypeOf(values)).toBe(Object.prototype)
    expect(values).toStrictEqual({ a: 1, b: undefined, c: null })
  })
})

describe('§6 a failing flow never loses the other results', () => {
  function failingFanOut() {
    const w = world()
    const boom = new Error('boom in b')
    w.record(w.a, () => 'a ok')
    w.record(w.b, () => {
      throw boom
    })
    w.record(w.c, async () => {
      await new Promise((r) => setTimeout(r, 5))
      return 'c ok'
    })
    return { ...w, boom, nodes: w.rt.createNodeArray([w.a, w.b, w.c]) }
  }

  it('return() rejects with HANDLER_FAILED holding every result and every failure', async () => {
    const { nodes, boom } = failingFanOut()
    const result = await nodes.send({ type: 'job' })
    const error = await rejection(result.return())
    expect(error).toBeInstanceOf(HappenError)
    expect(error.name).toBe('HappenError')
    expect(error.code).toBe('HANDLER_FAILED')
    expect(error.results).toEqual({ a: 'a ok', c: 'c ok' })
    expect(error.errors).toEqual({ b: boom })
    expect(error.errors.b).toBe(boom)
  })

  it('an async rejection counts as a failure too', async () => {
    const { rt, a, b, record } = world()
    const reason = new Error('async boom')
    record(a, () => 'a ok')
    record(b, async () => {
      await null
      throw reason
    })
    const error = await rejection(
      rt
        .createNodeArray([a, b])
        .send({ type: 'x' })
        .then((r) => r.return()),
    )
    expect(error.code).toBe('HANDLER_FAILED')
    expect(error.results).toEqual({ a: 'a ok' })
    expect(error.errors.b).toBe(reason)
  })

  it('a single target failing rejects with HANDLER_FAILED too', async () => {
    const { a, record } = world()
    const boom = new Error('alone')
    record(a, () => {
      throw boom
    })
    const error = await rejection(a.send({ type: 'x' }).return())
    expect(error.code).toBe('HANDLER_FAILED')
    expect(error.errors).toEqual({ a: boom })
  })

  it('a failure nobody asks about (send without return()) does not crash the process', () => {
    // As in the document's "No Configuration Needed": node.send(...) without awaiting anything.
    const script = `
      const { initializeHappen } = require('happen');
      const n = initializeHappen().createNode('n');
      n.on('data-point', () => { throw new Error('handler failed'); });
      n.on('other', async () => { throw new Error('async handler failed'); });
      n.send({ type: 'data-point', payload: { value: 42 } });
      n.send([{ type: 'other' }, { type: 'other' }]);
      setTimeout(() => console.log('still alive'), 50);`
    const res = spawnSync(process.execPath, ['-e', script], { cwd: root, timeout: 10_000, encoding: 'utf8' })
    expect(res.signal, res.stderr).toBeNull()
    expect(res.status, res.stderr).toBe(0)
    expect(res.stdout.trim()).toBe('still alive')
  })

  it('{ settled: true } resolves like Promise.allSettled, keyed by node id', async () => {
    const { nodes, boom } = failingFanOut()
    const result = await nodes.send({ type: 'job' })
    expect(await result.return({ settled: true })).toEqual({
      a: { status: 'fulfilled', value: 'a ok' },
      b: { status: 'rejected', reason: boom },
      c: { status: 'fulfilled', value: 'c ok' },
    })
  })

  it('{ settled: true } for one target is keyed as well', async () => {
    const { a, record } = world()
    record(a, () => 5)
    expect(await a.send({ type: 'x' }).return({ settled: true })).toEqual({ a: { status: 'fulfilled', value: 5 } })
  })
})

describe('§6 return({ timeout })', () => {
  it('rejects with TIMEOUT naming the nodes still running, holding the finished results', async () => {
    const { rt, record, ...w } = world(['fast-node', 'slow-node', 'quick-node'])
    const gate = deferred()
    record(w['fast-node'], () => 'fast done')
    record(w['slow-node'], async () => {
      await gate.promise
      return 'slow late'
    })
    record(w['quick-node'], () => 'quick done')
    const nodes = rt.createNodeArray([w['fast-node'], w['slow-node'], w['quick-node']])
    const result = await nodes.send({ type: 'x' })
    const error = await rejection(result.return({ timeout: 30 }))
    expect(error).toBeInstanceOf(HappenError)
    expect(error.code).toBe('TIMEOUT')
    expect(error.message).toContain('slow-node')
    expect(error.message).not.toContain('fast-node')
    expect(error.message).not.toContain('quick-node')
    expect(error.results).toEqual({ 'fast-node': 'fast done', 'quick-node': 'quick done' })
    expect(error.pending).toEqual(['slow-node'])

    // The flow itself is not cancelled: without the timeout the result still arrives.
    gate.resolve()
    expect(await result.return()).toEqual({
      'fast-node': 'fast done',
      'slow-node': 'slow late',
      'quick-node': 'quick done',
    })
  })

  // issue 12: with settled: true the timeout rejected like without it.
  it('with { settled: true } it never rejects: at the timeout, finished entries as they are, running ones rejected TIMEOUT', async () => {
    const { rt, record, ...w } = world(['fast-node', 'slow-node', 'failing-node'])
    const gate = deferred()
    record(w['fast-node'], () => 'fast done')
    record(w['slow-node'], async () => {
      await gate.promise
      return 'slow late'
    })
    record(w['failing-node'], () => {
      throw new RangeError('failed quickly')
    })
    const nodes = rt.createNodeArray([w['fast-node'], w['slow-node'], w['failing-node']])
    const result = await nodes.send({ type: 'x' })
    const started = Date.now()
    const settled = await result.return({ settled: true, timeout: 30 })
    expect(Date.now() - started).toBeGreaterThanOrEqual(25)
    expect(Object.keys(settled)).toEqual(['fast-node', 'slow-node', 'failing-node'])
    expect(settled['fast-node']).toEqual({ status: 'fulfilled', value: 'fast done' })
    expect(settled['failing-node'].status).toBe('rejected')
    expect(settled['failing-node'].reason).toBeInstanceOf(RangeError)
    expect(settled['slow-node'].status).toBe('rejected')
    expect(settled['slow-node'].reason).toBeInstanceOf(HappenError)
    expect(settled['slow-node'].reason.code).toBe('TIMEOUT')
    expect(settled['slow-node'].reason.message).toContain("'slow-node'")
    expect(settled['slow-node'].reason.message).toContain('30 ms')

    // One target: its entry, keyed as always.
    const single = await w['slow-node'].send({ type: 'x' })
    const alone = await single.return({ settled: true, timeout: 20 })
    expect(Object.keys(alone)).toEqual(['slow-node'])
    expect(alone['slow-node'].reason.code).toBe('TIMEOUT')

    // Finished in time: the plain settled entries.
    gate.resolve()
    expect(await result.return({ settled: true, timeout: 1_000 })).toEqual({
      'fast-node': { status: 'fulfilled', value: 'fast done' },
      'slow-node': { status: 'fulfilled', value: 'slow late' },
      'failing-node': { status: 'rejected', reason: expect.any(RangeError) },
    })
  })

  it('resolves normally when the flows finish in time', async () => {
    const { a, record } = world()
    record(a, async () => 'quick')
    expect(await a.send({ type: 'x' }).return({ timeout: 5_000 })).toBe('quick')
  })
})

describe('§6 node.process', () => {
  it('resolves to what (await node.send(e)).return() gives', async () => {
    const { rt, a, b, record } = world()
    record(a, (event) => ({ doubled: event.payload * 2 }))
    b.on('other', () => 'never')
    expect(await a.process({ type: 'x', payload: 21 })).toEqual(
      await (await a.send({ type: 'x', payload: 21 })).return(),
    )
    expect(await a.process({ type: 'x', payload: 21 })).toEqual({ doubled: 42 })
    expect(await b.process({ type: 'x' })).toBeNull()
    expect(await rt.createNodeArray([a, b]).process({ type: 'x', payload: 1 })).toEqual({ a: { doubled: 2 }, b: null })
  })

  it('an empty batch resolves to null without running a handler', async () => {
    const { a, record } = world()
    const handler = vi.fn(() => 'ran')
    record(a, handler)
    expect(await a.process([])).toBeNull()
    expect(handler).not.toHaveBeenCalled()
  })

  it('a failing flow rejects process with HANDLER_FAILED', async () => {
    const { a, record } = world()
    const boom = new Error('nope')
    record(a, () => {
      throw boom
    })
    const error = await rejection(a.process({ type: 'x' }))
    expect(error.code).toBe('HANDLER_FAILED')
    expect(error.errors.a).toBe(boom)
  })
})

describe('§6 node.broadcast', () => {
  it('delivers to every node of the runtime, and only this runtime', async () => {
    const { a, b, c, seen, record } = world()
    for (const n of [a, b, c]) record(n)
    const other = initializeHappen()
    const stranger = vi.fn()
    other.createNode('a').on('*', stranger)
    const result = await b.broadcast({ type: 'hello' })
    expect(await result.return()).toEqual({ a: 'a got hello', b: 'b got hello', c: 'c got hello' })
    expect(seen.map((s) => s.node).sort()).toEqual(['a', 'b', 'c'])
    expect(new Set(seen.map((s) => s.event.context.causal.id)).size).toBe(1)
    expect(stranger).not.toHaveBeenCalled()
  })

  it('includes nodes created after earlier broadcasts', async () => {
    const { rt, a, seen, record } = world(['a'])
    record(a)
    await (await a.broadcast({ type: 'one' })).return()
    record(rt.createNode('late'))
    await (await a.broadcast({ type: 'two' })).return()
    expect(seen.map((s) => `${s.node}:${s.event.type}`).sort()).toEqual(['a:one', 'a:two', 'late:two'])
  })
})
