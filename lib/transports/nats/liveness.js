'use strict'

// Liveness of long-running remote branches (methods of NatsTransport): every half heartbeat,
// the branches waiting longer than a heartbeat are asked after, the way their requests
// travelled (so a check never overtakes its request). No responders: the process is gone;
// "lost": the request never arrived or its process restarted. Either fails the branch
// NODE_LOST promptly; an answer "running" waits another heartbeat; a check unanswered for a
// heartbeat (its process died reading it, or the answer was lost) is asked again.
// - A check is `{"running": [branch, …], "after"?: true}` with the reply subject `<inbox>p<n>`:
//   the serving side reads the sender's inbox off that subject, so a check carries branch numbers
//   alone. It is answered `{"lost": [branch, …], "rt": <runtime id>}`, the branches of the check
//   that do not run there. Checks are split so that each, and so its answer (a part of it), stays
//   within messageLimit, whatever the number of branches waiting.
// - What arrives is checked before anything acts on it (inbound.js readCheck, readAnswer): branches are non-negative safe
//   integers; a check is no larger than one this side sends, an answer names no more branches
//   than its check. Anything else is dropped (logged under NODE_DEBUG=happen); the branches of an
//   answer dropped are asked after again.
// - A server restart loses no request whose process is alive (at least once): for a while after
//   a reconnection, a process that does not answer yet is asked again later; a request its live
//   process says it never got is sent again (a few times at most, marked `again`), and a reply
//   that process kept (kept.js) is sent again instead of "lost".

const debug = require('../../debug')
const { performance } = require('node:perf_hooks')
const { subjectOf, inboxOf } = require('./wire')
const { readCheck, readAnswer, runtimeOfReply } = require('./inbound')

/**
 * Checks of a branch that may go unanswered in a row (each waits a heartbeat) before it fails
 * NODE_LOST: its process is there (the server does not say "no responders") but cannot answer
 * (blocked past all reason, or its permissions refuse its answers: allow_responses).
 */
const UNANSWERED_CHECKS = 10
/** Characters a branch id takes in a check at most: up to 2^53 (16 digits), and a comma. */
const BRANCH_CHARS = 17
/** A check's characters besides its branches: `{"running":[],"after":true}` and some. */
const CHECK_CHARS = 32

/** Installed on NatsTransport.prototype by ./index.js. */
class Liveness {
  /**
   * Every half heartbeat: asks whether the flows of the branches waiting longer than a heartbeat
   * still run. A check travels the way its requests did (a framed request's on its runtime's
   * frame subject, a direct one's on its node's subject), so it reaches the serving process
   * after them: a process answers "not running" only for a request it has really not received.
   * No responders: the node's process is gone; "lost": the request never arrived (say, the
   * server restarted) or its process restarted. Either fails the branch. The pass over the
   * branches waiting copies none of them and builds no string per branch.
   */
  _checkLiveness() {
    if (!this.kept.empty) this._trimKept()
    if (this.state !== 'connected') return
    if (this.claims.size > 0) this._expireClaims()
    if (this.echoes.size > 0) {
      // An announcement lost (the server restarted): nothing more to wait for.
      const due = performance.now() - this.heartbeat
      for (const [id, echo] of [...this.echoes]) if (echo.sentAt <= due) this._heard(id)
    }
    if (this.pings.size > 0) this._expirePings()
    if (this.waiting.size === 0) return
    const due = performance.now() - this.heartbeat
    // The branches due, by the way their requests went: a runtime's frames (its id) or a node's subject (its handle).
    const byWay = new Map()
    this.waiting.forEach((waiting, branch) => {
      if (waiting.sentAt > due || waiting.pinged) return
      const way = waiting.frame !== 0 ? waiting.host : waiting.node
      const list = byWay.get(way)
      if (list === undefined) byWay.set(way, [branch])
      else list.push(branch)
    })
    const most = this._branchesPerCheck()
    for (const [way, branches] of byWay) {
      const route = typeof way === 'string' ? `happen.rt.${way}` : subjectOf(way.id)
      if (branches.length <= most) this._ping(route, branches)
      else for (let from = 0; from < branches.length; from += most) this._ping(route, branches.slice(from, from + most))
    }
  }

  /** How many branches one check names at most: it stays within messageLimit. */
  _branchesPerCheck() {
    return Math.max(1, Math.floor((this.messageLimit - CHECK_CHARS) / BRANCH_CHARS))
  }

  /** Asks on `route` whether `branches` run there still; the answer comes on `<inbox>p<n>`. */
  _ping(route, branches) {
    const key = `p${this.nextToken++}`
    // `after`: some were sent before this connection was replaced; their replies may be lost.
    let after = false
    for (let i = 0; i < branches.length; i++) {
      const waiting = this.waiting.get(branches[i])
      waiting.pinged = true
      if (waiting.epoch < this.reconnections) after = true
    }
    // this.pings: check key -> the branches it asks after, sent at `sentAt`.
    branches.sentAt = performance.now()
    this.pings.set(key, branches)
    this._out(route, this.inbox + key, '', JSON.stringify(after ? { running: branches, after } : { running: branches }))
  }

  /** Checks unanswered for a heartbeat: their branches are asked after again. */
  _expirePings() {
    const due = performance.now() - this.heartbeat
    // In the order they were sent: the first one not due ends the pass.
    for (const [key, branches] of this.pings) {
      if (branches.sentAt > due) return
      this.pings.delete(key)
      this._askAgain(branches)
    }
  }

  /**
   * The next liveness pass asks after these branches (those still waiting) again; one whose
   * checks went unanswered UNANSWERED_CHECKS times in a row fails NODE_LOST.
   */
  _askAgain(branches) {
    for (let i = 0; i < branches.length; i++) {
      const waiting = this.waiting.get(branches[i])
      if (waiting === undefined) continue
      waiting.pinged = false
      if (++waiting.unanswered < UNANSWERED_CHECKS) continue
      this._failBranch(
        branches[i],
        'NODE_LOST',
        `Node '${waiting.node.id}' does not answer: its process took ${UNANSWERED_CHECKS} liveness checks without answering one (blocked, or the NATS server's permissions refuse its answers: allow_responses, see the README "Security")`,
      )
    }
  }

  /**
   * A check from the runtime whose inbox its reply subject names: which of its branches do not
   * run here. A finished one whose reply is kept gets that reply again instead.
   */
  _onPing(reply, body) {
    const check = readCheck(reply, body, this.messageLimit)
    if (typeof check === 'string')
      return this.drops.drop('liveness check', 'a node or runtime subject', runtimeOfReply(reply), check)
    const { running, after } = check
    const inbox = inboxOf(reply)
    const serving = this.serving.get(inbox)
    // A check comes from one runtime: its kept replies are looked up once.
    let kept = null
    const lost = []
    for (let i = 0; i < running.length; i++) {
      const branch = running[i]
      if (serving?.has(branch)) continue
      // A finished branch's reply went before this answer (and arrives first) unless either
      // side's connection was replaced meanwhile: then it is sent again, if still kept.
      if ((after || this.disconnectedAt >= 0) && !this.kept.empty) {
        if (kept === null) kept = this.kept.of(inbox)
        if (this._replyAgain(inbox, branch, kept, reply)) continue
      }
      lost.push(branch)
    }
    // Replies sent again go first: they answer this check (see requests.js _answers).
    const again = this.replies.get(reply)
    if (again !== undefined) {
      this.replies.delete(reply)
      this._sendReplies(reply, again)
    }
    this._out(reply, '', '', JSON.stringify({ lost, rt: this.route }))
  }

  /**
   * A request its (live) process says it never got is sent again when the connection was
   * replaced since it left (it may have been lost with the old one), or when the process that
   * answers is the one it was framed to; a few times at most. Otherwise the process that had it
   * is gone (say, restarted): NODE_LOST.
   */
  _resendable(waiting, answer) {
    if (waiting.resent >= 3) return false
    return waiting.epoch < this.reconnections || (waiting.host !== null && answer.rt === waiting.host)
  }

  _onPingAnswer(key, header, body) {
    const branches = this.pings.get(key)
    if (branches === undefined) return
    this.pings.delete(key)
    const gone = header === 'status:503'
    const answer = gone ? null : readAnswer(header, body, branches.length)
    if (typeof answer === 'string') {
      this.drops.drop(
        'liveness answer',
        `this runtime's inbox (${key})`,
        null,
        `${answer}; its branches are asked after again`,
      )
      return this._askAgain(branches)
    }
    const lost = gone ? null : new Set(answer.lost)
    for (const branch of branches) {
      const waiting = this.waiting.get(branch)
      if (waiting === undefined) continue
      const id = waiting.node.id
      if (gone && performance.now() < this.graceUntil) {
        // After a reconnection: its process may not be back on the server yet.
        waiting.pinged = false
        waiting.sentAt = performance.now()
      } else if (gone) {
        this._failBranch(
          branch,
          'NODE_LOST',
          `Node '${id}' stopped answering while its flow was running: no process hosts it any more (its process exited or lost its NATS connection)`,
        )
      } else if (lost.has(branch) && this._resendable(waiting, answer)) {
        // The process is alive and never got the request (or its reply was lost and is not
        // kept any more): the request goes again (at least once, see the README).
        debug.logTransport('nats', 'resending the request of branch %d to node %s: lost in transit', branch, id)
        waiting.resent++
        if (this.meter !== null) this.meter.resent() // metrics
        waiting.pinged = false
        waiting.sentAt = performance.now()
        this._direct(waiting, false, true)
      } else if (lost.has(branch)) {
        this._failBranch(
          branch,
          'NODE_LOST',
          `Node '${id}' is not running this flow: the event was lost in transit (the NATS server restarted?) or its process restarted`,
        )
      } else {
        waiting.pinged = false
        waiting.unanswered = 0
        waiting.sentAt = performance.now()
      }
    }
  }
}

module.exports = { Liveness }
