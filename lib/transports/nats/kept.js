'use strict'

// Reply messages this process sent lately, kept so that one the server lost (it restarted) is
// sent again when its requester asks after it, instead of its flow running twice.
// - Each is kept as the text it was sent as, with when and to which inbox: oldest first, so
//   dropping the old ones is a cut at the front.
// - The texts are parsed only when a requester asks after one: an index by inbox and branch is
//   built then, and extended with what was kept since; a cut resets it.

class KeptReplies {
  constructor() {
    /** [sent at, inbox, text], flat, oldest first. */
    this.entries = []
    this._resetIndex()
  }

  get empty() {
    return this.entries.length === 0
  }

  /** A reply message sent at `at` (performance.now()) to `inbox`. */
  keep(at, inbox, text) {
    this.entries.push(at, inbox, text)
  }

  /** Drops the messages sent before `from` (performance.now()). */
  dropBefore(from) {
    const kept = this.entries
    let cut = 0
    while (cut < kept.length && kept[cut] < from) cut += 3
    if (cut === 0) return
    kept.splice(0, cut)
    this._resetIndex()
  }

  _resetIndex() {
    this.index = new Map()
    this.indexedUpTo = 0
  }

  /** The replies kept for `inbox`: branch -> [its message's items, its item's index], a branch's newest winning. */
  of(inbox) {
    const kept = this.entries
    const index = this.index
    for (let i = this.indexedUpTo; i < kept.length; i += 3) {
      let byBranch = index.get(kept[i + 1])
      if (byBranch === undefined) index.set(kept[i + 1], (byBranch = new Map()))
      const items = JSON.parse(kept[i + 2]).r
      for (let j = 0; j < items.length; j++) byBranch.set(items[j][0], [items, j])
    }
    this.indexedUpTo = kept.length
    return index.get(inbox) || new Map()
  }
}

module.exports = { KeptReplies }
