'use strict'

// Liveness of long-running remote branches (methods of NatsTransport): every half heartbeat,
// the branches waiting longer than a heartbeat are asked after, the way their requests
// travelled (so a check never overtakes its request). No responders: the process is gone;
// "lost": the request never arrived or its process restarted. Either fails the branch
// NODE_LOST promptly; an answer "running" waits another heartbeat.

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
      this._out(route, this.inbox + key, '', JSON.stringify({ running: replies }))
    }
  }

  _onPing(reply, body) {
    const { running } = JSON.parse(body)
    const lost = running.filter((r) => {
      const cut = r.lastIndexOf('.') + 1
      const serving = this.serving.get(r.slice(0, cut))
      return serving === undefined || !serving.has(Number(r.slice(cut)))
    })
    this._out(reply, '', '', JSON.stringify({ lost, rt: this.rt }))
  }

  _onPingAnswer(key, header, body) {
    const branches = this.pings.get(key)
    if (branches === undefined) return
    this.pings.delete(key)
    const gone = header === 'status:503'
    const lost = gone ? null : new Set(JSON.parse(body).lost)
    for (const branch of branches) {
      const waiting = this.waiting.get(branch)
      if (waiting === undefined) continue
      const id = waiting.node.id
      if (gone) {
        this._failBranch(
          branch,
          'NODE_LOST',
          `Node '${id}' stopped answering while its flow was running: no process hosts it any more (its process exited or lost its NATS connection)`,
        )
      } else if (lost.has(this.inbox + branch)) {
        this._failBranch(branch, 'NODE_LOST', `Node '${id}' is not running this flow: the event was lost in transit (the NATS server restarted?) or its process restarted`)
      } else {
        waiting.pinged = false
        waiting.sentAt = performance.now()
      }
    }
  }
}

module.exports = { Liveness }
