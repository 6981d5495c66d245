'use strict'

// What the NATS server's permissions refuse (methods of NatsTransport), surfaced as
// PERMISSION_DENIED naming the subject, never as a wait that does not end:
// - a subscription refused: a local node's subject refuses that node (disposed; ready()
//   rejects); this runtime's inbox, frame subject or presence make the transport unusable
//   (ready() and every send reject); happen.fan only stops this runtime taking fan frames;
// - a publish refused: the branches waiting on what went there fail at once, and so does
//   every later send there (until a reconnection, which may bring other permissions); a refused
//   announcement rejects ready(); a refused answer is logged (a warning at most once a
//   minute), and its requester's liveness checks get it again or fail the branch NODE_LOST.
// The server reports a refusal after the fact, by subject: it is matched to what was sent
// there.

const debug = require('../../debug')
const { HappenError } = require('../../errors')
const { PRESENCE, FAN, subjectOf, inboxOf, runtimeOf, redactInboxes } = require('./wire')

/** Installed on NatsTransport.prototype by ./index.js. */
class Permissions {
  /** `detail`: `publish <subject>` or `subscribe <subject>` (src/nats.rs denial). */
  _onDenied(detail) {
    const cut = detail.indexOf(' ')
    const subject = detail.slice(cut + 1)
    if (detail.startsWith('subscribe')) this._subscriptionDenied(subject)
    else this._publishDenied(subject)
  }

  _subscriptionDenied(subject) {
    const error = denied(`cannot subscribe to '${redactInboxes(subject)}'`)
    debug.logTransport('nats', '%s', error.message)
    if (subject === FAN) return void (this.fanDenied = true)
    const id = this.localBySubject.get(subject)
    if (id === undefined) return this._fail(error)
    // The node cannot be reached: it is refused, as a duplicate id is.
    this._report(error)
    const node = this.host.localNode(id)
    if (node !== undefined && !this.host.closed) node.dispose()
  }

  _publishDenied(subject) {
    if (!subject.startsWith('happen.')) return this._answerDenied(subject)
    const error = denied(`cannot publish to '${subject}'`)
    debug.logTransport('nats', '%s', error.message)
    if (subject === PRESENCE) return this._report(error)
    this.denied.set(subject, error)
    for (const [branch, waiting] of [...this.waiting]) {
      if (this._routeOf(waiting) === subject || (subject === FAN && waiting.fan !== 0))
        this._failBranch(branch, 'PERMISSION_DENIED', error.message)
    }
    for (const [key, claim] of [...this.claims]) {
      if (subjectOf(claim.id) !== subject) continue
      if (claim.node !== null && claim.confirm === null) {
        this._report(error)
        if (!this.host.closed && claim.node._index >= 0) claim.node.dispose()
      }
      this._onCheckAnswer(key, null)
    }
  }

  /**
   * An answer to another runtime was refused (its reply subject carries that runtime's secret:
   * not shown). Logged, with a warning at most once a minute; not a ready() failure, as a
   * server restart refuses the answers to what was asked before it (the requester's check gets
   * them again). Its requester's liveness checks find the branch: the kept answer is sent again
   * on a check after a reconnection, else the branch fails NODE_LOST once they go unanswered.
   */
  _answerDenied(subject) {
    const why = 'the NATS server refused it (allow_responses: see the README, "Security")'
    this.drops.drop('answer', `runtime ${runtimeOf(inboxOf(subject))}'s inbox`, this.route, why, false)
  }

  /** ready() reports `error` (once, however often the server refuses the same thing). */
  _report(error) {
    if (!this.refused.some((known) => known.message === error.message)) this.refused.push(error)
  }

  /** Where `waiting`'s request (and its liveness checks) went. */
  _routeOf(waiting) {
    return waiting.frame !== 0 ? `happen.rt.${waiting.host}` : subjectOf(waiting.node.id)
  }

  /** Fails `waiting` at once when the server refused publishing to `subject`; else false. */
  _refusedBefore(branch, subject) {
    const error = this.denied.get(subject)
    if (error === undefined) return false
    this._failBranch(branch, 'PERMISSION_DENIED', error.message)
    return true
  }
}

function denied(what) {
  return new HappenError(
    'PERMISSION_DENIED',
    `The NATS server's permissions refuse this process: it ${what}. Grant it in the server's authorization (see the README, "Security"), or connect as a user that has it`,
  )
}

module.exports = { Permissions }
