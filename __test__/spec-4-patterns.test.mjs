// SPEC §4 — Handlers and patterns.
import fc from 'fast-check'
import { describe, expect, it, vi } from 'vitest'
import { initializeHappen } from 'happen'

function oneNode(id = 'n') {
  const rt = initializeHappen()
  return { rt, node: rt.createNode(id) }
}

/** Which of `types` a handler registered with `pattern` receives. */
async function matched(pattern, types) {
  const { node } = oneNode()
  const got = []
  node.on(pattern, (event) => {
    got.push(event.type)
  })
  for (const type of types) await node.process({ type })
  return got
}

describe('§4 node.on returns a remover', () => {
  it('after removal the handler no longer runs; other handlers stay', async () => {
    const { node } = oneNode()
    const first = vi.fn(() => 'first')
    const second = vi.fn(() => 'second')
    const removeFirst = node.on('x', first)
    node.on('x', second)
    expect(typeof removeFirst).toBe('function')

    expect(await node.process({ type: 'x' })).toBe('first')
    removeFirst()
    expect(await node.process({ type: 'x' })).toBe('second')
    expect(first).toHaveBeenCalledTimes(1)
    expect(second).toHaveBeenCalledTimes(2)
  })

  it('with no handler left nothing matches (result null)', async () => {
    const { node } = oneNode()
    const handler = vi.fn(() => 1)
    const remove = node.on('x', handler)
    remove()
    expect(await node.process({ type: 'x' })).toBeNull()
    expect(handler).not.toHaveBeenCalled()
  })
})

describe('§4 patterns', () => {
  const types = [
    'order',
    'order.created',
    'order.shipped',
    'order.created.v2',
    'payment.created',
    'refund.created',
    'orders.created',
  ]

  it('exact type', async () => {
    expect(await matched('order.created', types)).toEqual(['order.created'])
  })

  it('`*` matches exactly one dot-separated segment', async () => {
    expect(await matched('order.*', types)).toEqual(['order.created', 'order.shipped'])
    expect(await matched('*.created', types)).toEqual([
      'order.created',
      'payment.created',
      'refund.created',
      'orders.created',
    ])
  })

  it("'*' alone matches every type", async () => {
    expect(await matched('*', types)).toEqual(types)
  })

  it('alternatives {a,b}', async () => {
    expect(await matched('{order,payment}.created', types)).toEqual(['order.created', 'payment.created'])
  })

  it('match any generated pattern exactly as the rules say', async () => {
    const word = fc.constantFrom('order', 'payment', 'created', 'v2')
    const type = fc.array(word, { minLength: 1, maxLength: 3 }).map((segs) => segs.join('.'))
    const segment = fc.oneof(
      word,
      fc.constant('*'),
      fc.uniqueArray(word, { minLength: 2, maxLength: 3 }).map((alts) => `{${alts.join(',')}}`),
    )
    const pattern = fc.array(segment, { minLength: 1, maxLength: 3 }).map((segs) => segs.join('.'))
    // The rules of SPEC §4, written out independently.
    const reference = (pat, t) => {
      if (pat === '*') return true
      const ps = pat.split('.')
      const ts = t.split('.')
      return (
        ps.length === ts.length &&
        ps.every((p, i) => p === '*' || (p.startsWith('{') ? p.slice(1, -1).split(',').includes(ts[i]) : p === ts[i]))
      )
    }
    await fc.assert(
      fc.asyncProperty(pattern, fc.uniqueArray(type, { minLength: 1, maxLength: 8 }), async (pat, types) => {
        expect(await matched(pat, types)).toEqual(types.filter((t) => reference(pat, t)))
      }),
      { numRuns: 150 },
    )
  })

  it('characters other than `*`, `.`, `{`, `,`, `}` match themselves only', async () => {
    expect(await matched('order.created', ['orderXcreated', 'order.created'])).toEqual(['order.created'])
    expect(await matched('a+b', ['a+b', 'aab'])).toEqual(['a+b'])
    expect(await matched('(x)|y', ['(x)|y', 'y', 'x'])).toEqual(['(x)|y'])
    expect(await matched('price.$', ['price.$', 'price.'])).toEqual(['price.$'])
  })

  it('a predicate (type) => boolean', async () => {
    const predicate = vi.fn((type) => type.endsWith('.created') && !type.startsWith('refund'))
    expect(await matched(predicate, types)).toEqual(['order.created', 'payment.created', 'orders.created'])
    expect(predicate.mock.calls.map((args) => args[0])).toEqual(expect.arrayContaining(types))
  })

  it('patterns also apply to nodes.on', async () => {
    const { rt } = oneNode()
    const nodes = rt.createNodeArray([rt.createNode('a'), rt.createNode('b')])
    const got = []
    nodes.on('order.*', (event, context) => {
      got.push(`${context.node.id}:${event.type}`)
    })
    await (await nodes.send({ type: 'order.created' })).return()
    await (await nodes.send({ type: 'payment.created' })).return()
    expect(got.sort()).toEqual(['a:order.created', 'b:order.created'])
  })

  it.each([
    ['an empty string', ''],
    ['unbalanced braces {', '{order,payment.created'],
    ['unbalanced braces }', 'order,payment}.created'],
    ['a number', 42],
    ['null', null],
    ['an object', { type: 'x' }],
  ])('%s is refused with a TypeError at on()', async (_label, pattern) => {
    const { rt, node } = oneNode()
    expect(() => node.on(pattern, () => {})).toThrow(TypeError)
    const nodes = rt.createNodeArray([node])
    expect(() => nodes.on(pattern, () => {})).toThrow(TypeError)
  })

  it('a handler that is not a function is refused with a TypeError', () => {
    const { node } = oneNode()
    expect(() => node.on('x', 'not a function')).toThrow(TypeError)
    expect(() => node.on('x')).toThrow(TypeError)
  })
})

describe('§4 handlers', () => {
  it('may be sync or async', async () => {
    const { node } = oneNode()
    node.on('sync', (event) => event.payload * 2)
    node.on('async', async (event) => {
      await new Promise((r) => setTimeout(r, 2))
      return event.payload * 3
    })
    expect(await node.process({ type: 'sync', payload: 2 })).toBe(4)
    expect(await node.process({ type: 'async', payload: 2 })).toBe(6)
  })

  it("several matching handlers all run, in registration order; the result is the first one's", async () => {
    const { node } = oneNode()
    const order = []
    node.on('order.created', async () => {
      order.push('exact')
      await new Promise((r) => setTimeout(r, 10))
      return 'from exact'
    })
    node.on('order.*', () => {
      order.push('wildcard')
      return 'from wildcard'
    })
    node.on('*', () => {
      order.push('all')
      return 'from all'
    })
    node.on('payment.*', () => {
      order.push('never')
    })
    expect(await node.process({ type: 'order.created' })).toBe('from exact')
    expect(order).toEqual(['exact', 'wildcard', 'all'])
  })

  it('the first registered handler decides the result even when it returns undefined', async () => {
    const { node } = oneNode()
    node.on('x', () => undefined)
    node.on('x', () => 'second')
    expect(await node.process({ type: 'x' })).toBeUndefined()
  })
})

describe('§4 context', () => {
  it('for a single event: { causal, node: { id } }', async () => {
    const { node } = oneNode('ctx-node')
    let seen
    node.on('x', (event, context) => {
      seen = { event, context }
    })
    await node.process({ type: 'x' })
    expect(seen.context.node).toEqual({ id: 'ctx-node' })
    expect(seen.context.causal).toEqual(seen.event.context.causal)
  })

  it('is the same object for every function of one flow, carrying what the flow stored', async () => {
    const { node } = oneNode()
    const contexts = []
    node.on('x', (event, context) => {
      contexts.push(context)
      context.stored = ['handler']
      return function second(e, ctx) {
        contexts.push(ctx)
        ctx.stored.push('second')
        return async function third(e2, ctx2) {
          contexts.push(ctx2)
          return ctx2.stored.concat('third')
        }
      }
    })
    expect(await node.process({ type: 'x' })).toEqual(['handler', 'second', 'third'])
    expect(new Set(contexts).size).toBe(1)
  })

  it('is a different object for every flow of one node', async () => {
    const { node } = oneNode()
    const contexts = []
    node.on('x', (event, context) => {
      contexts.push(context)
      const before = context.nodeState
      context.nodeState = { count: (context.nodeState?.count ?? 0) + 1 }
      return before
    })
    expect(await node.process({ type: 'x' })).toBeUndefined()
    expect(await node.process({ type: 'x' })).toBeUndefined()
    expect(contexts[0]).not.toBe(contexts[1])
  })

  it('is a different object for every node of a fan-out: nodeState written by one is never seen by another', async () => {
    const { rt } = oneNode()
    const nodes = rt.createNodeArray(['a', 'b', 'c'].map((id) => rt.createNode(id)))
    // Every flow writes, then waits until all three have written, then reads.
    let writes = 0
    let allWritten
    const barrier = new Promise((resolve) => {
      allWritten = resolve
    })
    nodes.on('update', async (event, context) => {
      const before = context.nodeState
      context.nodeState = { owner: context.node.id }
      if (++writes === 3) allWritten()
      await barrier
      return { before, after: context.nodeState.owner }
    })
    const result = await nodes.send({ type: 'update' })
    expect(await result.return()).toEqual({
      a: { before: undefined, after: 'a' },
      b: { before: undefined, after: 'b' },
      c: { before: undefined, after: 'c' },
    })
  })
})
