// SPEC §2 — createNode(id, options) validates its options as initializeHappen does.
import { describe, expect, it } from 'vitest'
import { initializeHappen, createNode } from 'happen'
import { thrown } from './helpers.mjs'

describe('createNode options', () => {
  it('an unknown option key is refused with a TypeError naming it, and no node is made', () => {
    const rt = initializeHappen()
    const error = thrown(() => rt.createNode('a', { historySize: 5 }))
    expect(error).toBeInstanceOf(TypeError)
    expect(error.message).toContain('"options.historySize"')
    expect(() => rt.node('a')).toThrow(expect.objectContaining({ code: 'UNKNOWN_NODE' }))
    expect(rt.createNode('a').id).toBe('a')
  })

  it('the top-level createNode refuses unknown keys too', () => {
    expect(() => createNode('top-level-options', { worker: true })).toThrow(/"options\.worker"/)
  })

  it('no options, undefined and an empty object are accepted; a non-object is refused', () => {
    const rt = initializeHappen()
    expect(rt.createNode('a').id).toBe('a')
    expect(rt.createNode('b', undefined).id).toBe('b')
    expect(rt.createNode('c', {}).id).toBe('c')
    expect(() => rt.createNode('d', 'fast')).toThrow(TypeError)
  })
})
