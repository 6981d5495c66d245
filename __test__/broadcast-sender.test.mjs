// SPEC §3 — outside any handler, node.broadcast(e) has node.id as sender, like node.send.
import { describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'

describe('node.broadcast from outside a handler', () => {
  it('every receiver sees the broadcasting node as sender, and the path ends with it', async () => {
    const rt = initializeHappen()
    const nodes = ['a', 'b', 'c'].map((id) => rt.createNode(id))
    nodes.forEach((n) => n.on('hello', (event) => event.context.causal))
    const results = await nodes[1].broadcast({ type: 'hello' }).return()
    expect(Object.keys(results)).toEqual(['a', 'b', 'c'])
    for (const causal of Object.values(results)) {
      expect(causal.sender).toBe('b')
      expect(causal.path).toEqual(['b'])
      expect(causal.causationId).toBeNull()
    }
    const tree = rt.trace(results.a.id)
    expect(tree.sender).toBe('b')
  })

  it('a disposed node cannot broadcast', () => {
    const rt = initializeHappen()
    const a = rt.createNode('a')
    rt.createNode('b')
    a.dispose()
    expect(() => a.broadcast({ type: 'x' })).toThrow(expect.objectContaining({ code: 'DISPOSED' }))
  })
})
