// The replies a NATS host keeps for requesters that lost them (a server restart): looked up by
// inbox and branch, the newest of a branch winning, also for what was kept after an earlier
// look-up, and nothing sent before the retention's start.
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

const { KeptReplies } = createRequire(import.meta.url)('../lib/transports/nats/kept.js')

const message = (items) => JSON.stringify({ h: 'rt', r: items })
/** The item kept for `branch`, from what KeptReplies.of() returned. */
const itemOf = (byBranch, branch) => {
  const [items, at] = byBranch.get(branch)
  return items[at]
}

describe('NATS kept replies', () => {
  it('finds each branch of an inbox in the message that carried it, the newest winning', () => {
    const kept = new KeptReplies()
    kept.keep(
      1,
      'a.',
      message([
        [1, 1, ['s'], 'one'],
        [2, 1, 0, 'two'],
      ]),
    )
    kept.keep(2, 'b.', message([[1, 1, [], 'other inbox']]))
    expect(kept.of('a.').get(2)).toEqual([
      [
        [1, 1, ['s'], 'one'],
        [2, 1, 0, 'two'],
      ],
      1,
    ])
    // Kept after the first look-up: still found, and newer than the first reply of branch 1.
    kept.keep(
      3,
      'a.',
      message([
        [1, 1, [], 'one again'],
        [3, 0, [], { message: 'x' }, 'step'],
      ]),
    )
    const a = kept.of('a.')
    expect(itemOf(a, 1)).toEqual([1, 1, [], 'one again'])
    expect(itemOf(a, 3)).toEqual([3, 0, [], { message: 'x' }, 'step'])
    expect(itemOf(a, 2)).toEqual([2, 1, 0, 'two'])
    expect(itemOf(kept.of('b.'), 1)).toEqual([1, 1, [], 'other inbox'])
    expect(kept.of('c.').size).toBe(0)
  })

  it('drops what was sent before the cut, and looks up only what remains', () => {
    const kept = new KeptReplies()
    kept.keep(10, 'a.', message([[1, 1, [], 'old']]))
    kept.keep(20, 'a.', message([[2, 1, [], 'new']]))
    expect(kept.of('a.').has(1)).toBe(true)
    kept.dropBefore(15)
    expect([...kept.of('a.').keys()]).toEqual([2])
    kept.dropBefore(25)
    expect(kept.empty).toBe(true)
    expect(kept.of('a.').size).toBe(0)
  })
})
