// SPEC §7 — a batch member's own causationId/correlationId apply to that member only.
import { describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'
import { traceEvents } from './helpers.mjs'

function batchNode() {
  const rt = initializeHappen()
  const n = rt.createNode('n')
  const seen = []
  n.on('m', (events, ctx) => {
    seen.push({ events, causals: ctx.events.map((e) => e.causal) })
    return ctx.events.length
  })
  return { rt, n, seen }
}

describe('root batch members keep their own ids', () => {
  it('a first member naming causationId leaves the others roots of their own', async () => {
    const { n, seen } = batchNode()
    const result = await n.send([{ type: 'm', causationId: 'cause-0' }, { type: 'm' }, { type: 'm' }])
    await result.return()
    const [c0, c1, c2] = seen[0].causals
    expect(c0.causationId).toBe('cause-0')
    expect(c1.causationId).toBeNull()
    expect(c1.correlationId).toBe(c1.id)
    expect(c2.causationId).toBeNull()
    expect(c2.correlationId).toBe(c2.id)
    expect(c0.correlationId).not.toBe(c1.correlationId)
  })

  it('a first member naming correlationId leaves the others their own correlation', async () => {
    const { n, seen } = batchNode()
    await n.process([{ type: 'm', correlationId: 'corr-0' }, { type: 'm' }])
    const [c0, c1] = seen[0].causals
    expect(c0.correlationId).toBe('corr-0')
    expect(c0.causationId).toBeNull()
    expect(c1.correlationId).toBe(c1.id)
    expect(c1.causationId).toBeNull()
  })

  it('sends from a member-1 flow correlate with member 1, not with member 0 (core agrees)', async () => {
    const rt = initializeHappen()
    const n = rt.createNode('n')
    const sink = rt.createNode('sink')
    const got = []
    sink.on('follow', (event) => got.push(event.context.causal))
    n.on('m', async (events, ctx) => {
      const c1 = ctx.events[1].causal
      await n.send(sink, { type: 'follow', causationId: c1.id })
      return c1
    })
    const c1 = await n.process([{ type: 'm', correlationId: 'corr-0' }, { type: 'm' }])
    expect(got[0].correlationId).toBe(c1.id)
    expect(rt.trace('corr-0')).not.toBeNull()
    const ids = traceEvents(rt.trace(c1.id)).map((e) => e.type)
    expect(ids).toContain('follow')
  })

  it('a batch sent from a flow: members without ids are caused by the flow, the first keeps its own', async () => {
    const rt = initializeHappen()
    const a = rt.createNode('a')
    const b = rt.createNode('b')
    let causals
    b.on('m', (_, ctx) => {
      causals = ctx.events.map((e) => e.causal)
    })
    a.on('go', async (event) => {
      await (await a.send(b, [{ type: 'm', causationId: 'elsewhere' }, { type: 'm' }])).return()
      return event.context.causal
    })
    const go = await a.process({ type: 'go' })
    expect(causals[0].causationId).toBe('elsewhere')
    expect(causals[1].causationId).toBe(go.id)
    expect(causals[1].correlationId).toBe(go.correlationId)
  })

  it('the trace shows the first member its own ids', async () => {
    const { rt, n } = batchNode()
    const result = await n.send([{ type: 'm', correlationId: 'corr-0' }, { type: 'm' }])
    await result.return()
    const tree = rt.trace(result.id)
    expect(tree.correlationId).toBe('corr-0')
    expect(tree.batch.size).toBe(2)
  })
})
