'use strict'

// Keyed collections for the transports' hot paths (NATS, worker threads) that a steady stream of
// sends cannot make the garbage collector drag along.
// - Why not a Map there: a Map whose entries keep coming and going rebuilds its table over and
//   over, and a table it replaced keeps its entries and a link to its successor. Once one of
//   them reaches the old generation, every scavenge keeps the whole chain of later tables
//   alive, and everything they name: with Maps for the requests waiting and for each turn's
//   frames, a quarter of a requester's allocation survived each scavenge, and GC took a third
//   of its CPU (a local fan-out: 1 %).
// - BranchTable: by branch id (a positive integer), each in the slot its low bits name; branch
//   ids are handed out in order and most leave soon, so the ones in flight rarely share a slot.
//   Sharing doubles the slots (up to MAX_SLOTS_BY_BRANCH; then a Map holds the rest). Iterated
//   in ascending branch order, the order requests were sent in.
//   The requests waiting for their reply, and the served branches whose flows run still.
// - TurnTable: what one turn gathers per destination, cleared every turn; each key's slot is
//   kept across turns, so a turn changes no table.

/** BranchTable's slots at first and at most; past that many in flight at once, a Map takes the rest. */
const FIRST_SLOTS = 1024
const MAX_SLOTS_BY_BRANCH = 65536

class BranchTable {
  constructor() {
    this._branches = new Float64Array(FIRST_SLOTS)
    this._values = new Array(FIRST_SLOTS).fill(undefined)
    /** Branches whose slot a live one holds, once the slots cannot grow. */
    this._overflow = null
    this.size = 0
  }

  get(branch) {
    const at = branch & (this._values.length - 1)
    if (this._branches[at] === branch) return this._values[at]
    return this._overflow === null ? undefined : this._overflow.get(branch)
  }

  has(branch) {
    return this.get(branch) !== undefined
  }

  set(branch, value) {
    const at = branch & (this._values.length - 1)
    if (this._branches[at] === branch && this._values[at] !== undefined) {
      this._values[at] = value
    } else if (this._values[at] === undefined) {
      this._branches[at] = branch
      this._values[at] = value
      this.size++
    } else if (this._values.length < MAX_SLOTS_BY_BRANCH) {
      this._grow()
      return this.set(branch, value)
    } else {
      if (this._overflow === null) this._overflow = new Map()
      if (!this._overflow.has(branch)) this.size++
      this._overflow.set(branch, value)
    }
    return this
  }

  delete(branch) {
    const at = branch & (this._values.length - 1)
    if (this._branches[at] === branch && this._values[at] !== undefined) {
      this._values[at] = undefined
      this.size--
      return true
    }
    if (this._overflow === null || !this._overflow.delete(branch)) return false
    this.size--
    if (this._overflow.size === 0) this._overflow = null
    return true
  }

  /** Twice the slots: every live branch moves to its slot there (two that share one again grow them again). */
  _grow() {
    const branches = this._branches
    const values = this._values
    this._branches = new Float64Array(values.length * 2)
    this._values = new Array(values.length * 2).fill(undefined)
    this.size = 0
    for (let i = 0; i < values.length; i++) if (values[i] !== undefined) this.set(branches[i], values[i])
  }

  /**
   * Calls `fn(value, branch)` for each entry, in no particular order, without a copy or a sort
   * (for a pass over many entries, say every half heartbeat); `fn` must not change the table.
   */
  forEach(fn) {
    const values = this._values
    for (let i = 0; i < values.length; i++) if (values[i] !== undefined) fn(values[i], this._branches[i])
    if (this._overflow !== null) this._overflow.forEach(fn)
  }

  /** [branch, value] pairs, in ascending branch order (a copy: the table may change meanwhile). */
  _entries() {
    const entries = []
    for (let i = 0; i < this._values.length; i++)
      if (this._values[i] !== undefined) entries.push([this._branches[i], this._values[i]])
    if (this._overflow !== null) for (const entry of this._overflow) entries.push(entry)
    return entries.sort((a, b) => a[0] - b[0])
  }

  keys() {
    return this._entries()
      .map((entry) => entry[0])
      [Symbol.iterator]()
  }

  values() {
    return this._entries()
      .map((entry) => entry[1])
      [Symbol.iterator]()
  }

  [Symbol.iterator]() {
    return this._entries()[Symbol.iterator]()
  }
}

/** Past this many keys ever seen, a clear() drops every slot (peers come and go; the next turn makes its own). */
const MAX_TURN_KEYS = 1024

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
    if (this._slots.size > MAX_TURN_KEYS) this._slots = new Map()
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
