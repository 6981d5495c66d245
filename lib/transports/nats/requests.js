'use strict'

// Requests and their replies (methods of NatsTransport): a send's targets in other processes.
// - start(delivery) sends the event once per target runtime and turn: on the node's subject
//   until its host is known, then in frames to that runtime (as few as fit max_payload).
// - Each remote branch waits in `waiting` until its reply settles it (result.settleTarget),
//   exactly once: a frame nobody took, or an entry whose node moved, is resent on the node's
//   subject; "no responders" fails it NO_RESPONDERS (a broadcast target gets null instead);
//   a message that could not be published fails it with the connection's code.

const debug = require('../../debug')
const { HappenError } = require('../../errors')
const { performance } = require('node:perf_hooks')
const { FAN, FRAME_LIMIT, encodeCausal, subjectOf, remoteError } = require('./wire')
const { BAD_JSON, parse, checkReplies } = require('./inbound')

/**
 * A frame's body: its entries' values one after another in one JSON array (k, k node ids, their
 * k branch ids, for a fan frame each id's runtime index, the causal context, the event), joined
 * once: no string per entry nor a concatenation to flatten.
 */
function frameBody(entries) {
  const values = []
  for (let i = 0; i < entries.length; i++) {
    const { ids, branches, at, causal, body } = entries[i]
    values.push(ids.length)
    for (let k = 0; k < ids.length; k++) values.push(JSON.stringify(ids[k]))
    for (let k = 0; k < branches.length; k++) values.push(branches[k])
    if (at !== undefined) for (let k = 0; k < at.length; k++) values.push(at[k])
    values.push(causal, body)
  }
  return `[${values.join(',')}]`
}

/** Installed on NatsTransport.prototype by ./index.js. */
class Requests {
  /**
   * Sends the planned event to the remote targets of one dispatch; replies finish their
   * branches. Past the bound on what waits for replies (maxInFlight branches, maxInFlightBytes),
   * and behind any send held already, the send is held back (see _holdBack); a send of a flow
   * serving another runtime's event is not (see _holdBack).
   */
  start(delivery) {
    const { result, slots: remote, wire: body, broadcast } = delivery
    const causalText = this._causalText(delivery)
    if (
      (this.heldFrom < this.held.length || !this._hasRoom(remote.length, body.length + causalText.length)) &&
      delivery.origin === undefined
    )
      return this._holdBack(result, remote, body, causalText, broadcast)
    this._request(result, remote, body, causalText, broadcast)
  }

  /** The send's causal context as its requests carry it (see wire.js encodeCausal). */
  _causalText(delivery) {
    const { causal, batch: info, origin, trace } = delivery
    // What only some sends carry goes in the causal context's `extra`.
    let extra = 0
    // The W3C trace context the remote flows' spans continue.
    if (trace !== null && trace !== undefined) {
      extra = { traceparent: trace.traceparent }
      if (trace.tracestate !== undefined) extra.tracestate = trace.tracestate
    }
    // A flow serving another runtime's branch: that runtime nests what it sends there.
    if (origin !== undefined) (extra === 0 ? (extra = {}) : extra).origin = origin
    if (info !== null) {
      ;(extra === 0 ? (extra = {}) : extra).batch = Array.from({ length: info.count }, (_, i) => {
        const c = i === 0 ? info.first : info.causalAt(i)
        return [c.id, c.causationId, c.correlationId]
      })
    }
    return encodeCausal(causal, extra, this.host.prefix)
  }

  /** Whether `count` more branches of a send of `bytes` fit the bound (anything does when nothing waits). */
  _hasRoom(count, bytes) {
    const waiting = this.waiting.size
    return waiting === 0 || (waiting + count <= this.maxInFlight && this.inFlightBytes + bytes <= this.maxInFlightBytes)
  }

  /** Sends one send's requests: its branches wait for their replies from now on. */
  _request(result, remote, body, causalText, broadcast) {
    const now = performance.now()
    // Each branch counts its share of the send's bytes against maxInFlightBytes while it waits.
    const bytes = (body.length + causalText.length) / remote.length
    let direct = null
    for (let i = 0; i < remote.length; i++) {
      const { slot, branch, node } = remote[i]
      const waiting = {
        result,
        slot,
        branch,
        node,
        sentAt: now,
        causal: causalText,
        body,
        bytes,
        frame: 0,
        /** The fan frame it went in (see _sendFrames), or 0. */
        fan: 0,
        host: null,
        pinged: false,
        /** Its liveness checks unanswered in a row (see liveness.js _askAgain). */
        unanswered: 0,
        broadcast,
        // Reconnections before it left (see _resendable) and how often it was sent again.
        epoch: this.reconnections,
        resent: 0,
      }
      this.waiting.set(branch, waiting)
      const host = this.useFrames ? this.hostOf.get(node.id) : undefined
      if (host === undefined) (direct || (direct = [])).push(waiting)
      else this._frame(host, node.id, waiting)
    }
    this.inFlightBytes += body.length + causalText.length
    this._hold(remote.length)
    if (direct !== null) for (let i = 0; i < direct.length; i++) this._direct(direct[i], i > 0)
  }

  /**
   * Holds a send back, in order behind those held already, until replies free room for it
   * (_admitHeld); its wire text is ready, so it leaves as it would have. `await send()` waits
   * meanwhile (result.hold()); a caller that does not await is not slowed, and what it sends
   * waits here. A send of a flow serving another runtime's event is never held: its number is
   * bounded by what that runtime holds in flight already, and holding it could deadlock two
   * runtimes whose flows wait on each other's.
   */
  _holdBack(result, remote, body, causalText, broadcast) {
    result.hold()
    this.held.push({ result, remote, body, causalText, broadcast })
  }

  /** Sends the sends held back, in order, while they fit the bound. */
  _admitHeld() {
    if (this.failure !== null || this.closing) return
    const held = this.held
    while (this.heldFrom < held.length) {
      const next = held[this.heldFrom]
      if (!this._hasRoom(next.remote.length, next.body.length + next.causalText.length)) break
      held[this.heldFrom++] = undefined
      this._request(next.result, next.remote, next.body, next.causalText, next.broadcast)
      next.result.admit()
    }
    if (this.heldFrom < held.length) {
      // The sends let go leave the front of the array empty: past a while it is copied anew.
      if (this.heldFrom >= 4096 && this.heldFrom * 2 >= held.length) {
        this.held = held.slice(this.heldFrom)
        this.heldFrom = 0
      }
      return
    }
    this.held = []
    this.heldFrom = 0
  }

  /**
   * Settles every send held back with `code` (SHUTDOWN, CONNECTION_FAILED): none of them will
   * leave. Each target fails with the code, and `await send()` rejects with it.
   */
  _refuseHeld(code, why) {
    const held = this.held
    const from = this.heldFrom
    this.held = []
    this.heldFrom = 0
    const bound = `maxInFlight ${this.maxInFlight} branches or maxInFlightBytes ${this.maxInFlightBytes} bytes`
    for (let i = from; i < held.length; i++) {
      const { result, remote } = held[i]
      for (const { slot, node } of remote) {
        const message = `The event for node '${node.id}' was held back (${bound} waiting for replies) and never sent: ${why}`
        result.settleTarget(slot, {
          ok: false,
          step: '(transport)',
          error: remoteError(node.id, { name: 'HappenError', code, message }),
        })
      }
      result.refuse(
        new HappenError(code, `This send was held back (${bound} waiting for replies) and never left: ${why}`),
      )
    }
  }

  /** Sends one branch's request on its node's subject (`again`: it may have arrived already). */
  _direct(waiting, sameBody, again = false) {
    waiting.frame = 0
    waiting.fan = 0
    const subject = subjectOf(waiting.node.id)
    if (this.denied.size > 0 && this._refusedBefore(waiting.branch, subject)) return
    // The header: the causal context's values, then 1 when sent again.
    const header = again ? `[${waiting.causal},1]` : `[${waiting.causal}]`
    this._out(subject, this.inbox + waiting.branch, header, sameBody ? '\0' : waiting.body)
  }

  /**
   * How many characters one frame (of requests or of replies) may hold: at most 3 bytes of UTF-8
   * per UTF-16 unit, so a frame within it always fits the server's max_payload, headers included.
   */
  _messageLimit() {
    return Math.min(FRAME_LIMIT, Math.floor((this.maxPayload - 1024) / 3))
  }

  /**
   * Adds one branch's request to this turn's frame for runtime `host`. A frame that would grow
   * past messageLimit leaves first; one entry alone may exceed it (encode() bounds its body).
   */
  _frame(host, id, waiting) {
    let frame = this.frames.get(host)
    if (frame === undefined) frame = this._newFrame(host)
    waiting.host = host
    // Targets of one send on one runtime share an entry: one event, several nodes.
    const last = frame.last
    if (last !== null && last.causal === waiting.causal) {
      waiting.frame = frame.no
      last.ids.push(id)
      last.branches.push(waiting.branch)
      frame.size += id.length + 16
      return
    }
    const size = waiting.causal.length + waiting.body.length + id.length + 32
    if (frame.entries.length > 0 && frame.size + size > this.messageLimit) {
      this._sendFrame(host, frame)
      frame = this._newFrame(host)
    }
    waiting.frame = frame.no
    frame.last = { causal: waiting.causal, body: waiting.body, ids: [id], branches: [waiting.branch] }
    frame.entries.push(frame.last)
    frame.size += size
  }

  _newFrame(host) {
    const frame = { no: this.nextFrame++, entries: [], size: 0, last: null }
    this.frames.set(host, frame)
    this._schedule()
    return frame
  }

  /**
   * Sends this turn's frames. Frames for two or more runtimes that fit one message together
   * leave as one fan frame on FAN, which every runtime subscribes to (one publish; the server
   * fans it out): the header names the target runtimes, each entry is one send (as in a frame,
   * with the target runtime of each id, an index into the header's list, after the branch ids),
   * its event written once for all its targets. A runtime serves the ids meant for it and skips
   * the message when it is not named. The branches keep their per-runtime frame numbers and
   * hosts, so replies (keyed by branch), retries of moved nodes and liveness checks (on each
   * runtime's own frame subject) work as for frames.
   */
  _sendFrames() {
    const frames = this.frames
    if (!this.useFan || frames.size < 2 || this.denied.has(FAN)) {
      for (const [host, frame] of frames) this._sendFrame(host, frame)
      return
    }
    let size = 0
    for (const frame of frames.values()) size += frame.size
    if (size > this.messageLimit) {
      for (const [host, frame] of frames) this._sendFrame(host, frame)
      return
    }
    // Only runtimes that replied within the last half heartbeat go in: one that is gone gets
    // its own frame, which the server answers "no responders" (resent on the nodes' subjects).
    const recent = performance.now() - this.heartbeat / 2
    const no = this.nextFrame++
    const hosts = []
    const entries = []
    const byCausal = new Map()
    for (const [host, frame] of frames) {
      if (!(this.heardAt.get(host) >= recent)) {
        this._sendFrame(host, frame)
        continue
      }
      const at = hosts.length
      hosts.push(host)
      for (let i = 0; i < frame.entries.length; i++) {
        const e = frame.entries[i]
        let merged = byCausal.get(e.causal)
        if (merged === undefined) {
          merged = { causal: e.causal, body: e.body, ids: [], branches: [], at: [] }
          byCausal.set(e.causal, merged)
          entries.push(merged)
        }
        for (let k = 0; k < e.ids.length; k++) {
          merged.ids.push(e.ids[k])
          merged.branches.push(e.branches[k])
          merged.at.push(at)
          // Its replies come on the fan frame's reply subject (see _answers).
          this.waiting.get(e.branches[k]).fan = no
        }
      }
    }
    frames.clear()
    if (hosts.length === 0) return
    // Nobody takes a fan frame only when no runtime is left at all (this one listens too): its
    // branches are then found out by their liveness checks.
    this.out.push(FAN, `${this.inbox}x${no}`, `{"t":${JSON.stringify(hosts)}}`, frameBody(entries))
  }

  _sendFrame(host, frame) {
    this.frames.delete(host)
    if (this.denied.size > 0 && this.denied.has(`happen.rt.${host}`)) {
      for (const entry of frame.entries)
        for (const branch of entry.branches) this._refusedBefore(branch, `happen.rt.${host}`)
      return
    }
    // The header (the entry count) is never empty: an empty one is a liveness check.
    this.out.push(
      `happen.rt.${host}`,
      `${this.inbox}x${frame.no}`,
      String(frame.entries.length),
      frameBody(frame.entries),
    )
  }

  /**
   * A remote branch's outcome: `ok`, the steps its flow ran, its value (ok) or error
   * ({message, code, name}), the failing step; `retry`: the runtime it was framed to does not
   * host the node (any more), so the node's subject is asked.
   */
  _settle(branch, ok, steps, payload, step, retry, host) {
    const waiting = this.waiting.get(branch)
    if (waiting === undefined) return
    if (retry === true) {
      this.hostOf.delete(waiting.node.id)
      return this._direct(waiting, false)
    }
    if (host !== undefined && waiting.frame === 0 && this.useFrames) this.hostOf.set(waiting.node.id, host)
    this.waiting.delete(branch)
    this._hold(-1)
    // Back to 0 exactly when nothing waits (the shares are fractions).
    this.inFlightBytes = this.waiting.size === 0 ? 0 : this.inFlightBytes - waiting.bytes
    const { result, slot } = waiting
    const ran = steps !== undefined && steps.length > 0
    if (ran) {
      // A ring: past its size the oldest entries are overwritten.
      const ring = this.steps
      ring.branches[ring.next] = waiting.branch
      ring.names[ring.next] = steps
      ring.next = ring.next + 1 === ring.names.length ? 0 : ring.next + 1
      if (ring.count < ring.names.length) ring.count++
    }
    if (ok) result.settleTarget(slot, { ok: true, value: payload, matched: ran })
    else
      result.settleTarget(slot, { ok: false, step: step || '(remote)', error: remoteError(waiting.node.id, payload) })
    // The room it leaves goes to the sends held back.
    if (this.heldFrom < this.held.length) this._admitHeld()
  }

  /** `steps`, or the equal list the ring holds last. */
  _sharedSteps(steps) {
    const last = this.lastSteps
    if (steps.length !== last.length) return (this.lastSteps = steps)
    for (let i = 0; i < steps.length; i++) if (steps[i] !== last[i]) return (this.lastSteps = steps)
    return last
  }

  /** Records the steps remote flows reported on their branches (called by runtime.trace()). */
  flushSteps() {
    const steps = this.steps
    if (steps.count === 0) return
    const size = steps.names.length
    const pairs = []
    for (
      let i = 0, at = (steps.next - steps.count + size) % size;
      i < steps.count;
      i++, at = at + 1 === size ? 0 : at + 1
    ) {
      pairs.push(steps.branches[at], steps.names[at])
      steps.names[at] = undefined
    }
    steps.count = 0
    try {
      this.host.addSteps(JSON.stringify(pairs))
    } catch {}
  }

  _failBranch(branch, code, message) {
    this._settle(branch, false, undefined, { name: 'HappenError', code, message }, '(transport)', false)
  }

  /**
   * A message of replies on `key` of this runtime's inbox: `{h: replying runtime, r: [[branch,
   * 1, steps, value?] | [branch, 0, steps, error, step, retry?], …]}`; steps 0: the same as the
   * item before. An item that does not answer a request of ours made where it came is dropped.
   */
  _onReplies(key, body) {
    const message = parse(body)
    const problem = message === BAD_JSON ? 'not JSON' : checkReplies(message)
    if (problem !== null) {
      const sender = typeof message?.h === 'string' ? message.h : null
      return this.drops.drop('reply', `this runtime's inbox (${key.slice(0, 20)})`, sender, problem)
    }
    const { h: host, r: replies } = message
    const via = key.charCodeAt(0) === 120 /* x */ ? Number(key.slice(1)) : -1
    let steps
    let believed = false
    for (let i = 0; i < replies.length; i++) {
      const r = replies[i]
      if (r[2] !== 0) steps = this._sharedSteps(r[2])
      if (!this._answers(r[0], key, via, host)) continue
      believed = true
      if (r[1] === 1) this._settle(r[0], true, steps, r[3], undefined, false, host)
      else this._settle(r[0], false, steps, r[3], r[4], r[5] === 1, host)
    }
    if (believed) this.heardAt.set(host, performance.now())
  }

  /**
   * Whether a reply to `branch` that came on `key` (`via`: its frame number, or -1) from runtime
   * `host` answers a request this runtime made there: on the reply subject of the frame or the
   * request that carried it, from the runtime that frame went to, or on a liveness check of it.
   * Anything else (a guess at a branch id, one runtime answering for another) is dropped.
   */
  _answers(branch, key, via, host) {
    const waiting = this.waiting.get(branch)
    if (waiting === undefined) return false
    let ok
    if (via >= 0) ok = (waiting.frame === via || waiting.fan === via) && waiting.host === host
    else if (key.charCodeAt(0) === 112 /* p */) ok = this.pings.get(key)?.includes(branch) === true
    else ok = waiting.frame === 0 && Number(key) === branch
    if (!ok) {
      const why = 'a reply came where no request of its branch went, or from another runtime than it went to'
      this.drops.drop('reply', `this runtime's inbox (${key.slice(0, 20)})`, host, why, false)
    }
    return ok
  }

  /**
   * A message on this runtime's inbox. Replies (`{h, r}`) come on the reply subject of the
   * message that carried their requests: a frame's (`x<frame>`), a request's (`<branch>`) or a
   * liveness check's (`p<n>`, replies kept and sent again); the server's "no responders" comes
   * on the first two; `p<n>` and `c<n>` also bring the answers to checks and claims.
   */
  _onReply(subject, header, body) {
    const key = subject.slice(this.inbox.length)
    if (header !== 'status:503' && body.startsWith('{"h":')) return this._onReplies(key, body)
    const first = key.charCodeAt(0)
    if (first === 112 /* p: a liveness answer */) return this._onPingAnswer(key, header, body)
    if (first === 99 /* c: who serves an id */) return this._onCheckReply(key, header, body)
    if (first === 120 /* x: a frame nobody took */) {
      // Its runtime is gone: resend its requests on their nodes' subjects, which tell
      // whether each node lives elsewhere now or nowhere (no responders).
      const no = Number(key.slice(1))
      for (const waiting of this.waiting.values()) {
        if (waiting.frame !== no) continue
        this.hostOf.delete(waiting.node.id)
        this._direct(waiting, false)
      }
      return
    }
    const branch = Number(key)
    if (header === 'status:503') {
      const waiting = this.waiting.get(branch)
      const id = waiting ? waiting.node.id : '?'
      if (waiting && waiting.epoch < this.reconnections && performance.now() < this.graceUntil) {
        // Sent again after a reconnection before its process was back: asked again later.
        waiting.frame = 0
        waiting.pinged = false
        waiting.sentAt = performance.now()
        return
      }
      // Not (or no longer) hosted anywhere: out of the broadcast list until announced again.
      if (waiting) {
        waiting.node._listed = false
        this.hostOf.delete(id)
        // A broadcast reaches the nodes that exist: one whose process went away without a
        // word (killed, or exited without shutdown()) answers like a node with no handler.
        if (waiting.broadcast) return this._settle(branch, true, undefined, null, undefined, false)
      }
      return this._failBranch(
        branch,
        'NO_RESPONDERS',
        `No node with id '${id}' answers on NATS: no process connected to ${this.servers.join(', ')} hosts it (no responders)`,
      )
    }
  }

  /**
   * A message the connection could not publish (`code`: PAYLOAD_TOO_LARGE or CONNECTION_FAILED).
   * Nothing it carried is dropped without a word: a frame of requests too large is resent one
   * request per message; a request that cannot leave fails its branch with the code; a frame of
   * replies too large answers each of its branches with the error instead (small, so it leaves).
   * Replies lost with the connection are found by the requester's liveness check.
   */
  _onUnsent(subject, reply, reason, body) {
    const cut = reason.indexOf(' ')
    const code = reason.slice(0, cut)
    const why = reason.slice(cut + 1)
    if (debug.enabled) {
      const where = redactInboxes(`${subject} (reply ${reply || '-'})`)
      debug.logTransport('nats', 'could not publish to %s: %s', where, reason)
    }
    if (reply.startsWith(this.inbox)) {
      const key = reply.slice(this.inbox.length)
      if (key.charCodeAt(0) === 120 /* x: a frame of requests */) {
        const no = Number(key.slice(1))
        for (const [branch, waiting] of [...this.waiting]) {
          if (waiting.frame !== no) continue
          if (code === 'PAYLOAD_TOO_LARGE') this._direct(waiting, false)
          else this._failUnsent(branch, waiting, code, why)
        }
      } else if (key.charCodeAt(0) === 112 /* p: a liveness check, asked again next time */) {
        const branches = this.pings.get(key)
        this.pings.delete(key)
        if (branches !== undefined)
          for (const branch of branches) if (this.waiting.has(branch)) this.waiting.get(branch).pinged = false
      } else {
        const branch = Number(key)
        const waiting = this.waiting.get(branch)
        if (waiting !== undefined) this._failUnsent(branch, waiting, code, why)
      }
      return
    }
    if (code === 'PAYLOAD_TOO_LARGE' && body.startsWith('{"h":')) {
      const error = JSON.stringify({
        name: 'HappenError',
        code,
        message: `The reply could not be sent over NATS: ${why}`,
      })
      for (const item of JSON.parse(body).r) this._reply(subject, item[0], 0, '[]', `${error},"(reply)"`)
    }
  }

  _failUnsent(branch, waiting, code, why) {
    this._failBranch(branch, code, `The event could not be sent to node '${waiting.node.id}' over NATS: ${why}`)
  }
}

module.exports = { Requests }
