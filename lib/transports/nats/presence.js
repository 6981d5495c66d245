'use strict'

// Presence and node ids (methods of NatsTransport): who hosts which node id, so sends find a
// node by id and broadcast reaches every node of every process.
// - Node ids are unique across the processes of one deployment: a local node claims its id by
//   asking the id's subject first; a live host answering refuses it (DUPLICATE_NODE, reported
//   by ready()); two claims at the same moment are settled by their announcements (the earlier
//   claim keeps the id, both sides decide the same).
// - Every process announces its nodes on happen.presence (up/down, and again to a process that
//   says hello); handles of announced nodes are what broadcast reaches.

const debug = require('../../debug')
const native = require('../../native')
const { HappenError } = require('../../errors')
const { performance } = require('node:perf_hooks')
const { PRESENCE, subjectOf } = require('./wire')
const { BAD_JSON, parse, checkPresence, readAnswer, isRuntimeName } = require('./inbound')

/** Installed on NatsTransport.prototype by ./index.js. */
class Presence {
  /**
   * A local node is about to be created with this id. Node ids are unique across the processes
   * of one deployment: when this process knows (from presence or a reply) that a live process
   * hosts the id, it throws DUPLICATE_NODE; a remote handle of an id nobody is known to host is
   * forgotten (the node moved here). What it knows may be stale (a host killed without a word):
   * the refusal also asks the node's subject, and a silence there forgets the id.
   */
  beforeCreate(id) {
    const remote = this.remotes.get(id)
    if (remote === undefined) return
    const host = this.hostOf.get(id)
    if (host === undefined) return this._forget(id, remote)
    this._check(id, null)
    throw new HappenError(
      'DUPLICATE_NODE',
      `Cannot create node '${id}': another process (happen runtime ${host}) hosts a node with this id on NATS; node ids are unique across the processes of one NATS deployment`,
    )
  }

  /** Drops a remote handle: out of the core and of broadcasts; a held handle now says DISPOSED. */
  _forget(id, node) {
    this.remotes.delete(id)
    this.hostOf.delete(id)
    this.host.dropHandle(node)
  }

  /**
   * A local node claims its id before it listens on its subject: it asks the subject whether a
   * live process answers there. No responders: the id is free, the node subscribes and is
   * announced. An answer: the node is refused (disposed here; ready() rejects DUPLICATE_NODE)
   * and the first host keeps it. Two processes claiming at the same moment both hear "free";
   * their announcements then meet, and the later claim gives way (see _onPresence).
   */
  nodeCreated(node) {
    if (this.failure !== null) return
    this.claimedAt.set(node.id, Date.now())
    this._check(node.id, node)
  }

  /**
   * Asks `id`'s subject whether a live process serves it: for a local node's claim (`node`), to
   * find out whether a host this process knows of still runs (`node` null), or (`confirm`, a
   * runtime's name) whether the runtime that claimed a local node's id really serves it.
   */
  _check(id, node, confirm = null) {
    if (node === null && this.checking.has(id)) return
    if (node === null) this.checking.add(id)
    const key = `c${this.nextToken++}`
    let granted
    const settled = new Promise((resolve) => (granted = resolve))
    const late = confirm !== null && !this.echoes.has(id)
    this.claims.set(key, { id, node, confirm, late, sentAt: performance.now(), settled, granted })
    this._hold(1)
    this._out(subjectOf(id), this.inbox + key, '', JSON.stringify({ running: [] }))
  }

  /** A message on a claim's or check's reply subject: "no responders", or an answer `{lost: [], rt}`. */
  _onCheckReply(key, header, body) {
    if (header === 'status:503') return this._onCheckAnswer(key, null)
    // A claim's check asks after no branch: its answer names none lost.
    const answer = readAnswer('', body, 0)
    if (typeof answer !== 'string' && isRuntimeName(answer.rt)) return this._onCheckAnswer(key, answer)
    this.drops.drop(
      'answer',
      `this runtime's inbox (${key.slice(0, 20)})`,
      null,
      'not {lost, rt}: an answer to a claim',
    )
  }

  /** The answer to a claim or a check: `answer` null when nobody serves the id (or nobody answered in time). */
  _onCheckAnswer(key, answer) {
    const claim = this.claims.get(key)
    if (claim === undefined) return
    // Every process on the subject answers a confirmation (this one too): the claimant's counts.
    if (claim.confirm !== null && answer !== null && answer.rt !== claim.confirm) return
    this.claims.delete(key)
    this._hold(-1)
    const { id, node } = claim
    if (claim.confirm !== null) {
      if (answer !== null && !this.closed && this.host.localNode(id) === node)
        this._refuse(node, claim.confirm, claim.late)
      return claim.granted()
    }
    if (node === null) {
      this.checking.delete(id)
      // A host this process knew of: gone, or alive (and maybe another one than thought).
      const remote = this.remotes.get(id)
      if (answer === null) {
        if (remote !== undefined && this.host.localNode(id) === undefined) this._forget(id, remote)
      } else if (typeof answer.rt === 'string' && remote !== undefined && remote._index >= 0) {
        // (Unless presence said meanwhile that the host left: presence and answers may cross.)
        this.hostOf.set(id, answer.rt)
      }
      return claim.granted()
    }
    if (this.closed || this.host.localNode(id) !== node) return claim.granted()
    if (answer === null) this._listen(node)
    else this._refuse(node, typeof answer.rt === 'string' ? answer.rt : null)
    claim.granted()
  }

  /** The node's id is its own: it listens on its subject and is announced. */
  _listen(node) {
    const subject = subjectOf(node.id)
    this.localBySubject.set(subject, node.id)
    this._sendNow()
    this.subscriptions.set(node.id, native.natsSubscribe(this.handle, subject, 'q'))
    // ready() waits until this announcement comes back: a claim the server ordered before it
    // has arrived by then, and this node has given way (see _conflict).
    let heard
    const settled = new Promise((resolve) => (heard = resolve))
    this.echoes.set(node.id, { sentAt: performance.now(), settled, heard })
    this._hold(1)
    this._announce([node.id], true)
  }

  /** `first`: a node's first announcement (else one again, say for a process that said hello). */
  _announce(ids, first = false) {
    this._inParts(ids, (part) => {
      const at = part.map((id) => this.claimedAt.get(id))
      this._out(PRESENCE, '', '', JSON.stringify({ up: part, at, first, rt: this.route }))
    })
  }

  /** These local nodes leave (their process shuts down). */
  _announceDown(ids) {
    this._inParts(ids, (part) => this._out(PRESENCE, '', '', JSON.stringify({ down: part, rt: this.route })))
  }

  /**
   * Calls `send` with `ids` in parts whose presence message stays within messageLimit, however
   * many nodes this process hosts: each id as JSON, its claim time, and room for the rest.
   */
  _inParts(ids, send) {
    const room = this.messageLimit - 512
    let from = 0
    let size = 0
    for (let i = 0; i < ids.length; i++) {
      const cost = JSON.stringify(ids[i]).length + 16
      if (i > from && size + cost > room) {
        send(ids.slice(from, i))
        from = i
        size = 0
      }
      size += cost
    }
    send(from === 0 ? ids : ids.slice(from))
  }

  /** A node's first announcement came back (or will not: `id`'s wait ends anyway). */
  _heard(id) {
    const echo = this.echoes.get(id)
    if (echo === undefined) return
    this.echoes.delete(id)
    this._hold(-1)
    echo.heard()
  }

  /** A local node whose id a live process hosts: disposed here; the next ready() says so. */
  _refuse(node, host, late = false) {
    this._heard(node.id)
    const error = new HappenError(
      'DUPLICATE_NODE',
      `Node '${node.id}' was refused: another process${host === null ? '' : ` (happen runtime ${host})`} already hosts a node with this id on NATS, and keeps it; node ids are unique across the processes of one NATS deployment`,
    )
    debug.logTransport('nats', '%s', error.message)
    this.refused.push(error)
    // A node that had already been announced gives way after ready() may have resolved.
    if (late) process.emitWarning(error.message, { code: 'DUPLICATE_NODE' })
    if (this.host.closed || node._index < 0) return
    try {
      node.dispose()
    } catch {}
  }

  nodeDisposed(node) {
    this.claimedAt.delete(node.id)
    this._heard(node.id)
    const sid = this.subscriptions.get(node.id)
    if (sid === undefined) return
    this.subscriptions.delete(node.id)
    this.localBySubject.delete(subjectOf(node.id))
    if (this.closed || this.failure !== null) return
    this._sendNow()
    native.natsUnsubscribe(this.handle, sid)
    this._out(PRESENCE, '', '', JSON.stringify({ down: [node.id], rt: this.route }))
  }

  /** Any id that is not a local node's names a node of another process. */
  resolve(id) {
    return this.remoteNode(id)
  }

  /** The handle of a node of another process (made once per id). */
  remoteNode(id) {
    let node = this.remotes.get(id)
    if (node === undefined || node._index < 0) {
      node = this.senders.forget(id)
      if (node === undefined || node._index < 0) node = this.host.createHandle(id)
      this.remotes.set(id, node)
    }
    return node
  }

  /**
   * The handle of the node `id` that sent an event served here: a known remote node's, else
   * one of the senders' handles (limits.js SenderHandles), so strangers' ids are not kept.
   */
  senderNode(id) {
    const known = this.host.localNode(id) ?? this.remotes.get(id)
    if (known !== undefined && known._index >= 0) return known
    let node = this.senders.take(id)
    if (node === undefined) this.senders.keep(id, (node = this.host.createHandle(id)))
    return node
  }

  /** What a broadcast reaches here: every node other processes announced. */
  everyone() {
    const nodes = []
    for (const node of this.remotes.values()) if (node._listed === true && node._index >= 0) nodes.push(node)
    return nodes
  }

  _onPresence(body) {
    const message = parse(body)
    const problem = message === BAD_JSON ? 'not JSON' : checkPresence(message)
    if (problem !== null) {
      const sender = typeof message?.rt === 'string' ? message.rt : null
      return this.drops.drop('presence', PRESENCE, sender, problem)
    }
    if (message.rt === this.route) {
      if (message.first === true) for (const id of message.up) this._heard(id)
      return
    }
    if (debug.enabled && (message.up || message.down)) {
      debug.logTransport('nats', 'nodes up %j, down %j from %s', message.up ?? [], message.down ?? [], message.rt)
    }
    if (message.hello !== undefined) {
      if (this.subscriptions.size > 0) this._announce([...this.subscriptions.keys()])
      return
    }
    const up = message.up || []
    for (let i = 0; i < up.length; i++) this._announced(up[i], message, i)
    for (const id of message.down || []) {
      const node = this.remotes.get(id)
      if (node === undefined || this.hostOf.get(id) !== message.rt) continue
      this._forget(id, node)
    }
  }

  /**
   * Runtime `message.rt` says it hosts `id` (the `i`-th id it announced). An id hosted here is
   * settled by _conflict; an id another runtime is known to host keeps that host until the id's
   * subject says otherwise (a claim never takes a node away from a live host: see _check).
   */
  _announced(id, message, i) {
    const mine = this.host.localNode(id)
    if (mine !== undefined) {
      if (this.subscriptions.has(id)) this._conflict(mine, message, i)
      return
    }
    const known = this.hostOf.get(id)
    if (known !== undefined && known !== message.rt) return this._check(id, null)
    if (known === undefined && !this._mayHost(message.rt, id)) return
    this.remoteNode(id)._listed = true
    this.hostOf.set(id, message.rt)
  }

  /** Whether runtime `rt` may add `id` to what this runtime knows (limits.js); logged when not. */
  _mayHost(rt, id) {
    const { nodesPerRuntime, remoteNodes } = this.limits
    const over =
      this.hostOf.countOf(rt) >= nodesPerRuntime
        ? `runtime ${rt} announced more than ${nodesPerRuntime} nodes (limits.nodesPerRuntime)`
        : this.hostOf.size >= remoteNodes
          ? `more than ${remoteNodes} remote nodes are known (limits.remoteNodes)`
          : null
    if (over !== null) this.drops.drop('presence', PRESENCE, rt, `node '${id}' refused: ${over}`, false)
    return over === null
  }

  /**
   * Another runtime announced an id a node here serves: both claimed it at about the same moment
   * (or a claim went unanswered). The earlier claim keeps the id (the runtime id breaks a tie):
   * both sides decide the same. The keeper announces itself again, so everyone ends up knowing
   * it; the other gives way once the keeper answers on the id's subject (anyone may publish a
   * claim: presence alone takes no node away), before its ready() resolves when the
   * announcements crossed before its own came back, else later with a warning.
   */
  _conflict(node, message, i) {
    const rt = message.rt
    const at = message.at === undefined ? undefined : message.at[i]
    const mine = this.claimedAt.get(node.id)
    const theirs = at !== undefined && mine !== undefined && (at < mine || (at === mine && rt < this.route))
    if (theirs) this._check(node.id, node, rt)
    else this._announce([node.id])
  }

  /**
   * A claim nobody answered within a heartbeat (a host whose connection died without the server
   * noticing yet, or one too busy to answer): the id is taken as free; if a live host did have it,
   * the announcements meet and the later claim gives way.
   */
  _expireClaims() {
    const due = performance.now() - this.heartbeat
    for (const [key, claim] of [...this.claims]) if (claim.sentAt <= due) this._onCheckAnswer(key, null)
  }
}

module.exports = { Presence }
