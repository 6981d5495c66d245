'use strict'

// Liveness of long-running remote branches (methods of NatsTransport): every half heartbeat,
// the branches waiting longer than a heartbeat are asked after, the way their requests
// travelled (so a check never overtakes its request). No responders: the process is gone;
// "lost": the request never arrived or its process restarted. Either fails the branch
// NODE_LOST promptly; an answer "running" waits another heartbeat.
// - A server restart loses no request whose process is alive (at least once): for a while after
//   a reconnection, a process that does not answer yet is asked again later; a request its live
//   process says it never got is sent again (a few times at most, marked `again`), and a reply
//   that process kept (kept.js) is sent again instead of "lost".

const debug = require('../../debug')
const { performance } = require('node:perf_hooks')
const { subjectOf } = require('./wire')

/** Installed on NatsTransport.prototype by ./index.js. */
class Liveness {
  /**
   * Every half heartbeat: asks whether the flows of the branches waiting longer than a heartbeat
   * still run. A check travels the way its requests did (a framed request's on its runtime's
   * frame subject, a direct one's on its node's subject), so it reaches the serving process
   * after them: a process answers "not running" only for a request it has really not received.
   * No responders: the node's process is gone; "lost": the request never arrived (say, the
   * server restarted) or its process restarted. Either fails the branch.
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
    if (this.waiting.size === 0) return
    const due = performance.now() - this.heartbeat
    const byRoute = new Map()
    for (const [branch, waiting] of this.waiting) {
      if (waiting.sentAt > due || waiting.pinged) continue
      const route = waiting.frame !== 0 ? `happen.rt.${waiting.host}` : subjectOf(waiting.node.id)
      let list = byRoute.get(route)
      if (list === undefined) byRoute.set(route, (list = []))
      list.push(branch)
    }
    for (const [route, branches] of byRoute) {
      const key = `p${this.nextToken++}`
      this.pings.set(key, branches)
      for (const branch of branches) this.waiting.get(branch).pinged = true
      const replies = branches.map((b) => this.inbox + b)
      // `after`: some were sent before this connection was replaced; their replies may be lost.
      const after = branches.some((b) => this.waiting.get(b).epoch < this.reconnections)
      this._out(route, this.inbox + key, '', JSON.stringify(after ? { running: replies, after } : { running: replies }))
    }
  }

  /** Which of the branches `running` names run here; a finished one whose reply is kept gets it again. */
  _onPing(reply, body) {
    const { running, after = false } = JSON.parse(body)
    // A check comes from one runtime: its kept replies are looked up once.
    let kept = null
    const lost = running.filter((r) => {
      const cut = r.lastIndexOf('.') + 1
      const inbox = r.slice(0, cut)
      const branch = Number(r.slice(cut))
      const serving = this.serving.get(inbox)
      if (serving?.has(branch)) return false
      // A finished branch's reply went before this answer (and arrives first) unless either
      // side's connection was replaced meanwhile: then it is sent again, if still kept.
      if (!(after || this.disconnectedAt >= 0) || this.kept.empty) return true
      if (kept === null) kept = this.kept.of(inbox)
      return !this._replyAgain(inbox, branch, kept, reply)
    })
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
    const answer = gone ? null : JSON.parse(body)
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
      } else if (lost.has(this.inbox + branch) && this._resendable(waiting, answer)) {
        // The process is alive and never got the request (or its reply was lost and is not
        // kept any more): the request goes again (at least once, see the README).
        debug.logTransport('nats', 'resending the request of branch %d to node %s: lost in transit', branch, id)
        waiting.resent++
        waiting.pinged = false
        waiting.sentAt = performance.now()
        this._direct(waiting, false, true)
      } else if (lost.has(this.inbox + branch)) {
        this._failBranch(
          branch,
          'NODE_LOST',
          `Node '${id}' is not running this flow: the event was lost in transit (the NATS server restarted?) or its process restarted`,
        )
      } else {
        waiting.pinged = false
        waiting.sentAt = performance.now()
      }
    }
  }
}

module.exports = { Liveness }
