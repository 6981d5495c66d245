'use strict'

// What other runtimes may make this one hold: bounded, whatever they say.
// - RemoteHosts: which runtime hosts each remote node id, with how many ids each runtime hosts,
//   so that no runtime may announce more than `nodesPerRuntime` ids and all of them together no
//   more than `remoteNodes` (the excess is refused and logged; ids already known are kept).
// - SenderHandles: the handles of nodes that only ever sent events here (no presence, no local
//   send named them), the `senders` most recently heard kept; an older one is released (its
//   next event makes it again).
// The id prefixes of peer runtimes the core interns (one per runtime that sent an event) stop
// at `peers`; events of further runtimes keep their ids as text (serving.js _peer).

/** Defaults of the NATS transport's `limits` option (index.d.ts NatsLimits). */
const DEFAULT_LIMITS = Object.freeze({
  nodesPerRuntime: 5_000,
  remoteNodes: 10_000,
  senders: 1_000,
  peers: 4_096,
})

/** Remote node id -> the runtime (route) hosting it, counted per runtime. */
class RemoteHosts {
  constructor() {
    this.byId = new Map()
    this.counts = new Map()
  }

  get size() {
    return this.byId.size
  }

  get(id) {
    return this.byId.get(id)
  }

  has(id) {
    return this.byId.has(id)
  }

  set(id, rt) {
    const before = this.byId.get(id)
    if (before === rt) return this
    if (before !== undefined) this._count(before, -1)
    this.byId.set(id, rt)
    this._count(rt, 1)
    return this
  }

  delete(id) {
    const before = this.byId.get(id)
    if (before === undefined) return false
    this.byId.delete(id)
    this._count(before, -1)
    return true
  }

  /** How many ids `rt` hosts as far as this runtime knows. */
  countOf(rt) {
    return this.counts.get(rt) ?? 0
  }

  _count(rt, by) {
    const n = (this.counts.get(rt) ?? 0) + by
    if (n === 0) this.counts.delete(rt)
    else this.counts.set(rt, n)
  }
}

/** The handles of nodes known only as senders, the `limit` most recently heard. */
class SenderHandles {
  constructor(limit, release) {
    this.limit = limit
    this.release = release
    this.handles = new Map()
  }

  /** The kept handle of `id`, as the most recently heard; undefined when none. */
  take(id) {
    const node = this.handles.get(id)
    if (node === undefined) return undefined
    this.handles.delete(id)
    if (node._index < 0) return undefined
    this.handles.set(id, node)
    return node
  }

  /** Keeps `node`, releasing the least recently heard past the limit. */
  keep(id, node) {
    this.handles.set(id, node)
    if (this.handles.size <= this.limit) return
    const [oldest, handle] = this.handles.entries().next().value
    this.handles.delete(oldest)
    this.release(handle)
  }

  /** Stops keeping `id`'s handle as a sender's (it is a known node now); returns it. */
  forget(id) {
    const node = this.handles.get(id)
    this.handles.delete(id)
    return node
  }
}

module.exports = { DEFAULT_LIMITS, RemoteHosts, SenderHandles }
