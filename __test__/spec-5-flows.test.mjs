// SPEC §5 — Flows (event continuum).
import { describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'
import { rejection } from './helpers.mjs'

function oneNode(id = 'flow-node') {
  const rt = initializeHappen()
  return { rt, node: rt.createNode(id) }
}

/** A handler that makes a flow of exactly `total` functions (itself included). */
function flowOf(total, { async = false } = {}) {
  let calls = 0
  const step = async
    ? async function step() {
        calls += 1
        return calls < total ? step : calls
      }
    : function step() {
        calls += 1
        return calls < total ? step : calls
      }
  return function handler(event, context) {
    calls = 1
    return calls < total ? step : calls
  }
}

describe('§5 a returned function is the next step', () => {
  it('is called with the same (event, context)', async () => {
    const { node } = oneNode()
    const seen = []
    node.on('order.placed', (event, context) => {
      seen.push([event, context])
      return function validate(e, ctx) {
        seen.push([e, ctx])
        return function charge(e2, ctx2) {
          seen.push([e2, ctx2])
          return `charged ${e2.payload.amount}`
        }
      }
    })
    expect(await node.process({ type: 'order.placed', payload: { amount: 5 } })).toBe('charged 5')
    expect(seen).toHaveLength(3)
    for (const [event, context] of seen) {
      expect(event).toBe(seen[0][0])
      expect(context).toBe(seen[0][1])
    }
  })

  it('a Promise of a function is followed too', async () => {
    const { node } = oneNode()
    node.on('x', async () => {
      await new Promise((r) => setTimeout(r, 2))
      return async (event) => {
        await new Promise((r) => setTimeout(r, 2))
        return () => `done ${event.type}`
      }
    })
    expect(await node.process({ type: 'x' })).toBe('done x')
  })

  it.each([
    ['a number', 42],
    ['a string', 'ok'],
    ['an object', { ok: true }],
    ['null', null],
    ['false', false],
    ['an array', [1, 2]],
  ])('any other value ends the flow and is its result: %s', async (_label, value) => {
    const { node } = oneNode()
    node.on('x', () => value)
    expect(await node.process({ type: 'x' })).toEqual(value)
  })

  it('undefined ends the flow: the result is undefined, not null', async () => {
    const { node } = oneNode()
    let ran = false
    node.on(
      'x',
      () =>
        function last() {
          ran = true
        },
    )
    const result = await node.process({ type: 'x' })
    expect(ran).toBe(true)
    expect(result).toBeUndefined()
  })

  it('a long flow runs every step, sync or async', async () => {
    const { node } = oneNode()
    node.on('sync', flowOf(5_000))
    node.on('async', flowOf(2_000, { async: true }))
    expect(await node.process({ type: 'sync' })).toBe(5_000)
    expect(await node.process({ type: 'async' })).toBe(2_000)
  })
})

describe('§5 a flow of more than 10,000 steps fails', () => {
  it('a flow of exactly 10,000 functions completes', async () => {
    const { node } = oneNode()
    node.on('count', flowOf(10_000))
    expect(await node.process({ type: 'count' })).toBe(10_000)
  })

  it('one more step fails with an error naming the node and the event type', async () => {
    const { node } = oneNode('looping-node')
    node.on('runaway.event', flowOf(10_001))
    const error = await rejection(node.process({ type: 'runaway.event' }))
    expect(error.name).toBe('HappenError')
    expect(error.code).toBe('HANDLER_FAILED')
    const inner = error.errors['looping-node']
    expect(inner.code).toBe('FLOW_TOO_LONG')
    expect(inner.message).toContain('looping-node')
    expect(inner.message).toContain('runaway.event')
  })

  it('an endless flow (a function returning itself) fails the same way', async () => {
    const { node } = oneNode('spinner')
    node.on('spin', function again() {
      return again
    })
    const error = await rejection(node.process({ type: 'spin' }))
    expect(error.code).toBe('HANDLER_FAILED')
    expect(error.errors.spinner.code).toBe('FLOW_TOO_LONG')
  })

  it('only the runaway node fails in a fan-out; the others keep their results', async () => {
    const { rt } = oneNode()
    const nodes = rt.createNodeArray([rt.createNode('ok-node'), rt.createNode('bad-node')])
    nodes.on('job', (event, context) =>
      context.node.id === 'bad-node'
        ? function again() {
            return again
          }
        : 'fine',
    )
    const error = await rejection((await nodes.send({ type: 'job' })).return())
    expect(error.code).toBe('HANDLER_FAILED')
    expect(error.results).toEqual({ 'ok-node': 'fine' })
    expect(error.errors['bad-node'].message).toContain('bad-node')
    expect(error.errors['bad-node'].message).toContain('job')
  })
})

describe('§5 every step is recorded in the causal history', () => {
  it('function names, node and outcome of a fulfilled flow', async () => {
    const { rt, node } = oneNode('checkout')
    function notify() {
      return 'notified'
    }
    async function charge() {
      return notify
    }
    node.on('order.placed', function validate() {
      return charge
    })
    const result = await node.send({ type: 'order.placed' })
    expect(await result.return()).toBe('notified')
    const tree = rt.trace(result.id)
    expect(tree.branches).toHaveLength(1)
    const [branch] = tree.branches
    expect(branch.node).toBe('checkout')
    expect(branch.steps.map((s) => s.name)).toEqual(['validate', 'charge', 'notify'])
    expect(branch.outcome).toBe('fulfilled')
  })

  it('the outcome of a failing flow, with its error', async () => {
    const { rt, node } = oneNode('checkout')
    function charge() {
      throw new Error('card declined')
    }
    node.on('order.placed', function validate() {
      return charge
    })
    const result = await node.send({ type: 'order.placed' })
    await rejection(result.return())
    const [branch] = rt.trace(result.id).branches
    expect(branch.steps.map((s) => s.name)).toEqual(['validate', 'charge'])
    expect(branch.outcome).toBe('rejected')
    expect(String(branch.error)).toContain('card declined')
  })
})
