// The transports' keyed tables (lib/tables.js): what the requests waiting and each turn's frames
// and replies are kept in behaves like the Maps they replace.
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

const { BranchTable, TurnTable } = createRequire(import.meta.url)('../lib/tables.js')

describe('transport tables', () => {
  it('BranchTable: get, has, set, delete and size by branch id; iterated in ascending branch order', () => {
    const table = new BranchTable()
    for (const branch of [12, 3, 7]) table.set(branch, { branch })
    table.set(7, { branch: 7, again: true })
    expect(table.size).toBe(3)
    expect(table.has(3)).toBe(true)
    expect(table.get(7)).toEqual({ branch: 7, again: true })
    expect(table.delete(3)).toBe(true)
    expect(table.delete(3)).toBe(false)
    expect(table.get(3)).toBeUndefined()
    expect(table.size).toBe(2)
    expect([...table.keys()]).toEqual([7, 12])
    expect([...table.values()].map((w) => w.branch)).toEqual([7, 12])
    expect([...table].map(([branch]) => branch)).toEqual([7, 12])
  })

  it('BranchTable: branches in flight whose low bits agree all stay, however far apart', () => {
    const table = new BranchTable()
    // 1024 apart share a slot at first; 65536 apart share one at any size.
    const branches = [1, 1025, 2049, 65537, 131073, 3 * 65536 + 1, 2 ** 40 + 1]
    for (const branch of branches) table.set(branch, `w${branch}`)
    expect(table.size).toBe(branches.length)
    for (const branch of branches) expect(table.get(branch)).toBe(`w${branch}`)
    expect([...table.keys()]).toEqual(branches)
    expect(table.delete(65537)).toBe(true)
    expect(table.get(65537)).toBeUndefined()
    expect(table.delete(65537)).toBe(false)
    table.set(131073, 'again')
    expect(table.size).toBe(branches.length - 1)
    expect(table.get(131073)).toBe('again')
    for (const branch of branches) table.delete(branch)
    expect(table.size).toBe(0)
    expect([...table]).toEqual([])
  })

  it('TurnTable: a turn gathers values by key in the order first set; clear() empties it, and keys come back', () => {
    const table = new TurnTable()
    table.set('rt-b', 1).set('rt-a', 2).set('rt-b', 3)
    expect(table.size).toBe(2)
    expect([...table]).toEqual([
      ['rt-b', 3],
      ['rt-a', 2],
    ])
    table.clear()
    expect(table.size).toBe(0)
    expect(table.get('rt-b')).toBeUndefined()
    expect([...table]).toEqual([])
    table.set('rt-a', 4)
    expect([...table.values()]).toEqual([4])
  })

  it('TurnTable: an entry deleted while iterating is skipped, the others all come', () => {
    const table = new TurnTable()
    for (const key of ['a', 'b', 'c']) table.set(key, key.toUpperCase())
    const seen = []
    for (const [key, value] of table) {
      seen.push(value)
      if (key === 'a') table.delete('b')
      table.delete(key)
    }
    expect(seen).toEqual(['A', 'C'])
    expect(table.size).toBe(0)
    expect(table.delete('a')).toBe(false)
  })
})
