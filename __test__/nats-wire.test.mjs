// The NATS wire's causal context: its values in a JSON array come back as the context that was
// sent, wherever in the array they start; the sender's own id travels as its seq, and a root
// event's correlation id (its own id) not at all.
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

const { CAUSAL_FIELDS, encodeCausal, decodeCausal } = createRequire(import.meta.url)('../lib/transports/nats/wire.js')

describe('NATS wire: causal contexts', () => {
  const root = {
    id: 'rt1-7',
    sender: null,
    causationId: null,
    correlationId: 'rt1-7',
    path: [],
    timestamp: 1764662400123,
  }
  const caused = {
    id: 'rt1-9',
    sender: 'orders',
    causationId: 'rt2-4',
    correlationId: 'rt2-1',
    path: ['checkout', 'orders'],
    timestamp: 1764662400124,
  }

  it('round-trips a root event and a caused one, each after other values in one array', () => {
    const list = JSON.parse(
      `[3,"a",${encodeCausal(root, 0, 'rt1-')},"b",${encodeCausal(caused, { origin: ['rt2', 12] }, 'rt1-')}]`,
    )
    expect(decodeCausal(list, 2, 'rt1')).toEqual(root)
    const second = 2 + CAUSAL_FIELDS + 1
    expect(decodeCausal(list, second, 'rt1')).toEqual(caused)
    expect(list[second + CAUSAL_FIELDS - 1]).toEqual({ origin: ['rt2', 12] })
    expect(list[2 + CAUSAL_FIELDS - 1]).toBe(0)
  })

  it("writes the sender's own id as its seq, and a root event's correlation id not at all", () => {
    const text = encodeCausal(root, 0, 'rt1-')
    expect(JSON.parse(`[${text}]`)[0]).toBe(7)
    expect(text).not.toContain('rt1')
    expect(text.length).toBeLessThan(JSON.stringify(root).length / 2)
  })

  it("writes an id that is not the sender's own (another prefix) as it is", () => {
    const foreign = { ...root, id: 'rt2-7', correlationId: 'rt2-7' }
    const list = JSON.parse(`[${encodeCausal(foreign, 0, 'rt1-')}]`)
    expect(list[0]).toBe('rt2-7')
    expect(decodeCausal(list, 0, 'rt1')).toEqual(foreign)
  })
})
