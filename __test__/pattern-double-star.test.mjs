// SPEC §4 — '**' matches one or more segments; '*' or '**' alone matches every type.
import { describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'

async function matched(pattern, types) {
  const rt = initializeHappen()
  const n = rt.createNode('n')
  n.on(pattern, (event) => event.type)
  const out = []
  for (const type of types) out.push(await n.process({ type }))
  return out
}

describe("'**' patterns", () => {
  it("'order.**' matches order.created and order.created.v2, not order", async () => {
    expect(await matched('order.**', ['order.created', 'order.created.v2', 'order', 'payment.created'])).toEqual([
      'order.created',
      'order.created.v2',
      null,
      null,
    ])
  })

  it("'**' in the middle or at the start takes one or more segments", async () => {
    expect(await matched('a.**.z', ['a.b.z', 'a.b.c.z', 'a.z'])).toEqual(['a.b.z', 'a.b.c.z', null])
    expect(await matched('**.created', ['x.created', 'x.y.created', 'created'])).toEqual([
      'x.created',
      'x.y.created',
      null,
    ])
    expect(await matched('{order,user}.**', ['user.a.b', 'order.x', 'cart.x'])).toEqual(['user.a.b', 'order.x', null])
  })

  it("'*' and '**' alone match every type", async () => {
    const types = ['a', 'a.b', 'a.b.c.d']
    expect(await matched('*', types)).toEqual(types)
    expect(await matched('**', types)).toEqual(types)
  })

  it("'*' still matches exactly one segment, and a partial '**' is refused", async () => {
    expect(await matched('order.*', ['order.created', 'order.created.v2'])).toEqual(['order.created', null])
    const rt = initializeHappen()
    expect(() => rt.createNode('n').on('order.a**', () => {})).toThrow(TypeError)
  })
})
