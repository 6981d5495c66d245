'use strict'

// Keyed collections for the transport's hot paths that a steady stream of sends cannot make the
// garbage collector drag along.
// - Why not a Map there: a Map whose entries keep coming and going rebuilds its table over and
//   over, and a table it replaced keeps its entries and a link to its successor. Once one of
//   them reaches the old generation, every scavenge keeps the whole chain of later tables
//   alive, and everything they name: with Maps for the requests waiting and for each turn's
//   frames, a quarter of a requester's allocation survived each scavenge, and GC took a third
//   of its CPU (a local fan-out: 1 %).
// - BranchTable: by branch id (an integer), on a plain object's elements, rebuilt only as
//   they grow or shrink; iterated in ascending branch order, the order requests were sent in.
//   The requests waiting for their reply, and the served branches whose flows run still.
// - TurnTable: what one turn gathers per destination, cleared every turn; each key's slot is
//   kept across turns, so a turn changes no table.

class BranchTable {
  constructor() {
    this._byBranch = Object.create(null)
    this.size = 0
  }

  get(branch) {
    return this._byBranch[branch]
  }

  has(branch) {
    return this._byBranch[branch] !== undefined
  }

  set(branch, waiting) {
    if (this._byBranch[branch] === undefined) this.size++
    this._byBranch[branch] = waiting
    return this
  }

  delete(branch) {
    if (this._byBranch[branch] === undefined) return false
    delete this._byBranch[branch]
    this.size--
    return true
  }

  *keys() {
    for (const key in this._byBranch) yield Number(key)
  }

  *values() {
    for (const key in this._byBranch) yield this._byBranch[key]
  }

  *[Symbol.iterator]() {
    for (const key in this._byBranch) yield [Number(key), this._byBranch[key]]
  }
}

/** Slots of keys unused for this many clears at once are dropped (peers come and go). */
const MAX_SLOTS = 1024

class TurnTable {
  constructor() {
    /** key -> { value } (undefined: nothing this turn), kept across turns. */
    this._slots = new Map()
    /** The keys holding a value, in the order they got it. */
    this._keys = []
  }

  get size() {
    return this._keys.length
  }

  get(key) {
    const slot = this._slots.get(key)
    return slot === undefined ? undefined : slot.value
  }

  set(key, value) {
    let slot = this._slots.get(key)
    if (slot === undefined) this._slots.set(key, (slot = { value: undefined }))
    if (slot.value === undefined) this._keys.push(key)
    slot.value = value
    return this
  }

  delete(key) {
    const slot = this._slots.get(key)
    if (slot === undefined || slot.value === undefined) return false
    slot.value = undefined
    this._keys.splice(this._keys.indexOf(key), 1)
    return true
  }

  clear() {
    const keys = this._keys
    for (let i = 0; i < keys.length; i++) this._slots.get(keys[i]).value = undefined
    keys.length = 0
    if (this._slots.size > MAX_SLOTS) this._slots = new Map()
  }

  *[Symbol.iterator]() {
    // A copy: an entry may be deleted (or another set) while the caller goes through them.
    for (const key of [...this._keys]) {
      const value = this.get(key)
      if (value !== undefined) yield [key, value]
    }
  }

  *values() {
    for (const [, value] of this) yield value
  }
}

module.exports = { BranchTable, TurnTable }
