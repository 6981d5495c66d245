// SPEC §8 — a branch's duration is the time that node's own flow ran, also when every
// handler is synchronous.
import { describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'

const busy = (ms) => {
  const end = performance.now() + ms
  while (performance.now() < end);
}

function fanOut(order, handlers) {
  const rt = initializeHappen()
  const nodes = order.map((id) => rt.createNode(id))
  nodes.forEach((n) => n.on('work', handlers[n.id]))
  return { rt, nodes: rt.createNodeArray(nodes) }
}

const durations = (tree) => Object.fromEntries(tree.branches.map((b) => [b.node, b.duration]))

describe("branch durations are each flow's own", () => {
  it('synchronous fan-out: a 50 ms node and two instant ones each show their own time', async () => {
    for (const order of [
      ['slow', 'fast1', 'fast2'],
      ['fast1', 'slow', 'fast2'],
      ['fast1', 'fast2', 'slow'],
    ]) {
      const { nodes } = fanOut(order, { slow: () => busy(50), fast1: () => 1, fast2: () => 2 })
      const result = await nodes.send({ type: 'work' })
      await result.return()
      const d = durations(result.trace())
      expect(d.slow).toBeGreaterThanOrEqual(49)
      expect(d.fast1).toBeLessThan(10)
      expect(d.fast2).toBeLessThan(10)
    }
  })

  it('an async flow after a slow synchronous one is timed from its own start', async () => {
    const { nodes } = fanOut(['slow', 'quick'], {
      slow: () => busy(50),
      quick: async () => {
        await null
        return 'q'
      },
    })
    const result = await nodes.send({ type: 'work' })
    await result.return()
    const d = durations(result.trace())
    expect(d.slow).toBeGreaterThanOrEqual(49)
    expect(d.quick).toBeLessThan(d.slow / 2) // not the slow flow's time; a margin for GC pauses under load
  })

  it('a synchronous failure next to a slow node is timed on its own', async () => {
    const { nodes } = fanOut(['slow', 'bad'], {
      slow: () => busy(40),
      bad: () => {
        throw new Error('no')
      },
    })
    const result = await nodes.send({ type: 'work' })
    await result.return({ settled: true })
    const d = durations(result.trace())
    expect(d.slow).toBeGreaterThanOrEqual(39)
    expect(d.bad).toBeLessThan(d.slow / 2) // not the slow flow's time; a margin for GC pauses under load
  })

  it("a slow node reached by a nested synchronous send counts inside its sender's flow only", async () => {
    const rt = initializeHappen()
    const a = rt.createNode('a')
    const b = rt.createNode('b')
    const c = rt.createNode('c')
    b.on('inner', () => busy(40))
    a.on('work', () => {
      a.send(b, { type: 'inner' })
      return 'a'
    })
    c.on('work', () => 'c')
    const result = await rt.createNodeArray([a, c]).send({ type: 'work' })
    await result.return()
    const tree = result.trace()
    const d = durations(tree)
    expect(d.a).toBeGreaterThanOrEqual(39)
    expect(d.c).toBeLessThan(10)
    expect(tree.branches[0].children[0].branches[0].duration).toBeGreaterThanOrEqual(39)
  })
})
