// SPEC §8 — the trace is complete for what the store holds, however deep the chain.
import { describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'
import { traceEvents } from './helpers.mjs'

/** A ping-pong of `hops` sends between two nodes; resolves to the runtime and the first event. */
async function pingPong(hops, historySize = 10_000) {
  const rt = initializeHappen({ historySize })
  const a = rt.createNode('a')
  const b = rt.createNode('b')
  let finish
  const finished = new Promise((resolve) => (finish = resolve))
  const bounce = (other) =>
    function bounce(event) {
      if (event.payload < hops) other.send(other, { type: 'ping', payload: event.payload + 1 })
      else finish(event.context.causal)
      return 'bounced'
    }
  a.on('ping', bounce(b))
  b.on('ping', bounce(a))
  const result = await a.send({ type: 'ping', payload: 0 })
  const last = await finished
  return { rt, first: result.id, last }
}

/** Follows the chain down the first branch's first child, without recursion. */
function chainDepth(tree) {
  let depth = 0
  for (let event = tree; event.branches[0]?.children[0]; event = event.branches[0].children[0]) depth++
  return depth
}

describe('trace() at any depth', () => {
  it('a 300-hop ping-pong traced by its correlation id holds all 301 events', async () => {
    const { rt, last } = await pingPong(300)
    const tree = rt.trace(last.correlationId)
    expect(tree.truncated).toBeUndefined()
    expect(traceEvents(tree)).toHaveLength(301)
    expect(chainDepth(tree)).toBe(300)
  })

  it('a 10,000-hop chain is traced whole: the tree and String(tree)', async () => {
    const { rt, first, last } = await pingPong(10_000, 20_000)
    const tree = rt.trace(first)
    expect(chainDepth(tree)).toBe(10_000)
    let deepest = tree
    while (deepest.branches[0].children[0]) deepest = deepest.branches[0].children[0]
    expect(deepest.id).toBe(last.id)
    const text = String(tree)
    expect(text.split('\n')).toHaveLength(20_002)
    expect(text).not.toContain('left out')
    expect(text).toContain(last.id)
    expect(rt.trace(last.id).id).toBe(last.id)
  })

  it('a 500-hop chain exports with JSON.stringify', async () => {
    const { rt, first, last } = await pingPong(500)
    const json = JSON.stringify(rt.trace(first))
    expect(json.startsWith(`{"id":"${first}"`)).toBe(true)
    expect(json).toContain(`"id":"${last.id}"`)
  })

  it('a shallow tree exports with JSON.stringify as plain nested JSON (indentation honoured)', async () => {
    const { rt, first } = await pingPong(3)
    const tree = rt.trace(first)
    const pretty = JSON.stringify(tree, null, 2)
    expect(pretty).toContain('\n  "type": "ping"')
    expect(JSON.parse(pretty).branches[0].children[0].branches[0].node).toBe('b')
  })
})
