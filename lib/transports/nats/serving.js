'use strict'

// Serving (methods of NatsTransport): events other processes send to the nodes of this one.
// - A request or a frame entry runs through the runtime's one way in (host.receive), as one
//   dispatch per entry, like a local fan-out; each node is answered as soon as its flow ends,
//   with the steps it ran, and the answers of one turn leave together, split to fit
//   max_payload. A node that is not (or no longer) here answers NO_RESPONDERS so its sender
//   can look for it elsewhere.
// - Every reply message sent is kept a while (see kept.js): a requester that lost one (the
//   server restarted) gets it again when it asks after its branch, and a request sent again
//   (marked `again`) whose flow runs here still, or whose reply is kept, is not run twice.

const debug = require('../../debug')
const { HappenError } = require('../../errors')
const { performance } = require('node:perf_hooks')
const {
  FAN,
  REPLY_EVERY,
  EARLY_REPLY_MS,
  CAUSAL_FIELDS,
  decodeCausal,
  inboxOf,
  runtimeOf,
  checkJson,
  describeError,
  WireBatch,
} = require('./wire')
const { BranchTable } = require('../../tables')
const {
  BAD_JSON,
  parse,
  checkRequest,
  checkFrame,
  checkFanHeader,
  checkFan,
  runtimeOfReply,
  branchOfReply,
} = require('./inbound')

/** Why a frame or request whose reply subject is no runtime's inbox is dropped (it cannot be answered). */
const NO_INBOX = "its reply subject is no runtime's inbox"

/** How often (in entries) serving a frame looks whether the drain's slice has run its time. */
const SLICE_CHECK = 4

/**
 * An event served here for another runtime (host.receive's `served`): its flows' ends are
 * answered, and the events they send name the sender's branch they serve (the origin).
 */
class ServedEvent {
  constructor(transport, nodes, peer, replyTo, branches) {
    this.transport = transport
    this.result = null
    this.nodes = nodes
    this.peer = peer
    this.inbox = peer.inbox
    /** The reply subject of the message that carried it: its answers go there (allow_responses). */
    this.replyTo = replyTo
    this.branches = branches
    /** The sender's branches whose flows run here still (this.transport.serving's table for inbox). */
    this.serving = null
    /** The steps of the branches of a run of served events, from stepsFrom on (see _fetchSteps). */
    this.steps = null
    this.stepsFrom = 0
  }

  targetDone(slot) {
    this.transport._finished(this, slot)
  }

  originOf(slot) {
    return [this.peer.rt, this.branches[slot]]
  }
}

/** Installed on NatsTransport.prototype by ./index.js. */
class Serving {
  /** A request on a node's subject: one event (or batch) for one local node. */
  _onRequest(subject, reply, header, body) {
    if (header === '') return this._onPing(reply, body)
    const branch = branchOfReply(reply)
    // The causal context's values, then 1 when sent again (see requests.js _direct).
    const wire = parse(header)
    const input = parse(body)
    const problem =
      branch < 0
        ? `its reply subject ${JSON.stringify(reply.slice(0, 40))} names no runtime's branch`
        : wire === BAD_JSON
          ? 'its causal header is not JSON'
          : input === BAD_JSON
            ? 'its body is not JSON'
            : checkRequest(wire, input)
    if (problem !== null) return this.drops.drop('request', subject, runtimeOfReply(reply), problem)
    const id = this.localBySubject.get(subject)
    const inbox = inboxOf(reply)
    if (wire[CAUSAL_FIELDS] === 1) {
      // Sent again (it may have arrived before): not run twice. Its flow runs here still, or
      // its kept reply goes again.
      const serving = this.serving.get(inbox)
      if (serving?.has(branch) || this._replyAgain(inbox, branch, this.kept.of(inbox), reply)) return
    }
    this._serve(this._peer(inbox), reply, [branch], [id], wire, 0, input)
  }

  /**
   * A frame: its header the entry count (none: a liveness check), its body the entries one
   * after another in one array: k, k node ids, their k branch ids, the causal context
   * (CAUSAL_FIELDS values), the event or batch.
   */
  _onFrame(reply, header, body, subject) {
    if (header === '') return this._onPing(reply, body)
    if (subject === FAN) return this._onFan(reply, header, body)
    const sender = runtimeOfReply(reply)
    const list = sender === null ? null : parse(body)
    const problem = sender === null ? NO_INBOX : list === BAD_JSON ? 'its body is not JSON' : checkFrame(list, header)
    if (problem !== null) return this.drops.drop('frame', subject, sender, problem)
    this._serveFrame(this._peer(inboxOf(reply)), reply, list, 0)
  }

  /** Serves a frame's entries from list[from] on; past the drain's slice, the rest is served in the next (index.js _drain). */
  _serveFrame(peer, reply, list, from) {
    const early = { at: performance.now() }
    for (let at = from, served = 0; at < list.length; served++) {
      if (served % SLICE_CHECK === SLICE_CHECK - 1 && this._sliceOver())
        return this._serveLater(this._serveFrame, peer, reply, list, at)
      const k = list[at]
      // Mostly one node per entry: a literal is cheaper than slice().
      const ids = k === 1 ? [list[at + 1]] : list.slice(at + 1, at + 1 + k)
      const branches = k === 1 ? [list[at + 2]] : list.slice(at + 1 + k, at + 1 + 2 * k)
      const causal = at + 1 + 2 * k
      at = causal + CAUSAL_FIELDS + 1
      this._serve(peer, reply, branches, ids, list, causal, list[at - 1])
      if (served % REPLY_EVERY === REPLY_EVERY - 1 && at < list.length) this._replyEarly(early)
    }
  }

  /**
   * A frame that takes long to serve: the answers so far leave (the sender can start on them)
   * once EARLY_REPLY_MS passed since the frame began or the last early answers left. Not
   * sooner: a message per few entries costs both sides more than it saves.
   */
  _replyEarly(early) {
    if (this.answers.length === 0) return
    const now = performance.now()
    if (now - early.at < EARLY_REPLY_MS) return
    early.at = now
    this._sendNow()
  }

  /**
   * A fan frame (see requests.js _sendFrames): header {t: target runtimes}, entries as in a
   * frame with, after the branch ids, the index in t of each id's runtime; this runtime serves
   * the ids meant for it, and skips a fan frame that does not name it without reading its body.
   */
  _onFan(reply, header, body) {
    if (!header.includes(`"${this.route}"`)) return
    const sender = runtimeOfReply(reply)
    const head = sender === null ? null : parse(header)
    const problem = sender === null ? NO_INBOX : head === BAD_JSON ? 'its header is not JSON' : checkFanHeader(head)
    if (problem !== null) return this.drops.drop('fan', FAN, sender, problem)
    const me = head.t.indexOf(this.route)
    if (me < 0) return
    const list = parse(body)
    const wrong = list === BAD_JSON ? 'its body is not JSON' : checkFan(head.t, list)
    if (wrong !== null) return this.drops.drop('fan', FAN, sender, wrong)
    this._serveFan(this._peer(inboxOf(reply)), reply, list, 0, me)
  }

  /** Serves a fan frame's entries for this runtime (index `me` in its header) from list[from] on, like _serveFrame. */
  _serveFan(peer, reply, list, from, me) {
    const early = { at: performance.now() }
    for (let at = from, served = 0; at < list.length; served++) {
      if (served % SLICE_CHECK === SLICE_CHECK - 1 && this._sliceOver())
        return this._serveLater(this._serveFan, peer, reply, list, at, me)
      const k = list[at]
      const ids = at + 1
      const runtimes = ids + 2 * k
      const causal = runtimes + k
      at = causal + CAUSAL_FIELDS + 1
      let mine = null
      let mineBranches = null
      for (let j = 0; j < k; j++) {
        if (list[runtimes + j] !== me) continue
        if (mine === null) {
          mine = []
          mineBranches = []
        }
        mine.push(list[ids + j])
        mineBranches.push(list[ids + k + j])
      }
      if (mine === null) continue
      this._serve(peer, reply, mineBranches, mine, list, causal, list[at - 1])
      if (served % REPLY_EVERY === REPLY_EVERY - 1 && at < list.length) this._replyEarly(early)
    }
  }

  /** The rest of a frame, from list[at] on, is served first in the drain's next slice. */
  _serveLater(serve, peer, reply, list, at, me) {
    this.resume = () => serve.call(this, peer, reply, list, at, me)
  }

  /**
   * Runs, for an event from another runtime (`peer`, see _peer), the flows of the local nodes `ids` (one dispatch,
   * like a local fan-out) and answers each node on `replyTo` as soon as its flow ends; `branches[i]` is the
   * sender's branch for `ids[i]`, the event's causal context the values at `wire[at]`.
   */
  _serve(peer, replyTo, branches, ids, wire, at, input) {
    const host = this.host
    let nodes = new Array(ids.length)
    let missing = host.closed
    for (let i = 0; i < ids.length; i++) {
      const node = ids[i] === undefined ? undefined : host.localNode(ids[i])
      if (node === undefined) missing = true
      nodes[i] = node
    }
    if (missing) {
      const error = (id) => ({
        name: 'HappenError',
        code: 'NO_RESPONDERS',
        message: `Node '${id}' is no longer served by this process`,
      })
      const framed = replyTo.charCodeAt(peer.inbox.length) === 120 /* x: a frame's */
      const keep = []
      nodes.forEach((node, i) => {
        // A frame's sender resends these on the node's subject (it may live elsewhere now).
        if (node === undefined || host.closed)
          this._reply(replyTo, branches[i], 0, '[]', `${JSON.stringify(error(ids[i]))},"(transport)",${framed ? 1 : 0}`)
        else keep.push(i)
      })
      if (keep.length === 0) return
      nodes = keep.map((i) => nodes[i])
      branches = keep.map((i) => branches[i])
    }
    const causal = decodeCausal(wire, at, peer.rt)
    const extra = wire[at + CAUSAL_FIELDS - 1]
    // Sent by a flow that serves one of this runtime's branches: caused by that branch.
    const origin = extra === 0 ? undefined : extra.origin
    const mine =
      origin !== undefined &&
      origin[0] === this.rt &&
      typeof causal.causationId === 'string' &&
      causal.causationId.startsWith(host.prefix)
    const answer = new ServedEvent(this, nodes, peer, replyTo, branches)
    let result
    try {
      result = host.receive({
        sender: causal.sender === null ? null : this.senderNode(causal.sender),
        nodes,
        input,
        causal,
        causeSeq: mine ? Number(causal.causationId.slice(host.prefix.length)) : -1,
        causeBranch: mine ? origin[1] : -1,
        // Its id is the sender's `<rt>-<seq>` (wire.js): it crosses to the core as numbers.
        aliasPrefix: typeof wire[at] === 'number' ? peer.aliasPrefix() : -1,
        aliasSeq: wire[at],
        batch: Array.isArray(input) ? new WireBatch(input, causal, extra.batch) : null,
        served: answer,
        trace:
          extra === 0 || extra.traceparent === undefined
            ? null
            : { traceparent: extra.traceparent, tracestate: extra.tracestate },
      })
    } catch (error) {
      const text = `${JSON.stringify(describeError(error))},"(delivery)"`
      for (const branch of branches) this._reply(replyTo, branch, 0, '[]', text)
      return
    }
    answer.result = result
    // Flows that finished at once have answered already; the others run on (liveness checks ask).
    for (let slot = 0; slot < branches.length; slot++) {
      if (result.isDone(slot)) continue
      if (answer.serving === null) {
        answer.serving = this.serving.get(peer.inbox)
        if (answer.serving === undefined) this.serving.set(peer.inbox, (answer.serving = new BranchTable()))
      }
      answer.serving.set(branches[slot], true)
    }
  }

  /** The runtime whose inbox is `inbox` (`_HAPPEN.<route>.<secret>.`): its inbox, its id, and its ids' prefix handle in the core. */
  _peer(inbox) {
    let peer = this.peers.get(inbox)
    if (peer === undefined) {
      // Peers come and go (a process restarted is a new runtime): the table is rebuilt past a bound.
      if (this.peers.size >= 1024) this.peers.clear()
      const rt = runtimeOf(inbox)
      const host = this.host
      let handle = -1
      // Interned in the core for good: past limits.peers, a runtime's event ids stay text.
      const intern = () => (this.interned < this.limits.peers ? (this.interned++, host.aliasPrefix(rt)) : -1)
      peer = { inbox, rt, aliasPrefix: () => (handle >= 0 ? handle : (handle = intern())) }
      this.peers.set(inbox, peer)
    }
    return peer
  }

  /** A served node's flow ended: its answer leaves with this turn's replies. */
  _finished(answer, slot) {
    const serving = answer.serving
    if (serving !== null) {
      serving.delete(answer.branches[slot])
      // Peers come and go (each process has its own inbox): drop a peer's empty set.
      if (serving.size === 0 && this.serving.get(answer.inbox) === serving) this.serving.delete(answer.inbox)
    }
    this.answers.push(answer, slot)
    this._schedule()
  }

  /** Builds the replies of the flows that ended this turn (steps fetched once per run of deliveries). */
  _answerFinished() {
    const list = this.answers
    this.answers = []
    // Steps the flows ran are in the runtime's journal until it reaches the core.
    this.host.flushJournal()
    this._fetchSteps(list)
    for (let i = 0; i < list.length; i += 2) {
      const answer = list[i]
      const slot = list[i + 1]
      const result = answer.result
      const stepsText = answer.steps[answer.stepsFrom + slot]
      const node = answer.nodes[slot]
      const failure = result.failureOf(slot)
      const branch = answer.branches[slot]
      if (failure === undefined) {
        const value = result.value(slot)
        let text
        try {
          checkJson(value, 'result', () => `The result of node '${node.id}'`)
          text = JSON.stringify(value)
          if (text !== undefined && text.length > this.messageLimit) this._fitsReply(text, node.id)
        } catch (error) {
          const why = error.message
          debug.logTransport(
            'nats',
            'the result of node %s cannot be sent to runtime %s: %s',
            node.id,
            answer.peer.rt,
            why,
          )
          this._reply(answer.replyTo, branch, 0, stepsText, `${JSON.stringify(describeError(error))},"(reply)"`)
          continue
        }
        this._reply(answer.replyTo, branch, 1, stepsText, text === undefined ? '' : text)
      } else {
        this._reply(
          answer.replyTo,
          branch,
          0,
          stepsText,
          `${JSON.stringify(describeError(failure.error))},${JSON.stringify(failure.step)}`,
        )
      }
    }
    // A flow still running may record further steps: its own answer fetches them anew.
    for (let i = 0; i < list.length; i += 2) list[i].steps = null
  }

  /**
   * Gives each delivery of `list` (answer, slot, answer, slot…) the steps of its branches:
   * `answer.steps[answer.stepsFrom + slot]`. Deliveries served one after another have
   * consecutive branches, so one call into the core fetches the steps of a whole run of them.
   */
  _fetchSteps(list) {
    let first = -1
    let count = 0
    let run = []
    const fetch = () => {
      const steps = this.host.stepsOfBranches(first, count).split('\n')
      // An empty line: the same steps as the branch before (one string, so _reply sees them equal).
      for (let k = 1; k < steps.length; k++) if (steps[k] === '') steps[k] = steps[k - 1]
      for (let k = 0; k < run.length; k++) {
        run[k].steps = steps
        run[k].stepsFrom = run[k].result._firstBranch - first
      }
      run = []
    }
    for (let i = 0; i < list.length; i += 2) {
      const answer = list[i]
      if (answer.steps !== null) continue
      const result = answer.result
      if (run.length > 0 && result._firstBranch === first + count) {
        count += result._targets.length
      } else {
        if (run.length > 0) fetch()
        first = result._firstBranch
        count = result._targets.length
      }
      // Marked as fetched (its own steps arrive with the run's).
      answer.steps = run
      run.push(answer)
    }
    if (run.length > 0) fetch()
  }

  /** Throws PAYLOAD_TOO_LARGE for a result the server would refuse in one message. */
  _fitsReply(text, id) {
    const size = Buffer.byteLength(text)
    if (size + 1024 <= this.maxPayload) return
    throw new HappenError(
      'PAYLOAD_TOO_LARGE',
      `The result of node '${id}' is ${size} bytes as JSON: more than the NATS server takes in one message (max_payload ${this.maxPayload} bytes)`,
    )
  }

  /**
   * Queues one reply to the reply subject `replyTo` (of the message that carried its request);
   * replies to one subject leave together. Item: `[branch, ok (1|0), steps JSON (0: as the
   * item before), rest]`, rest being the value (none: undefined) or `error, step[, retry]`.
   */
  _reply(replyTo, branch, ok, steps, rest) {
    let list = this.replies.get(replyTo)
    if (list === undefined) list = this._newReplies(replyTo)
    let item = `[${branch},${ok},${steps === list.steps ? '0' : steps}${rest === '' ? '' : ','}${rest}]`
    // Replies split like requests: a message of them never exceeds the server's max_payload.
    if (list.length > 0 && list.size + item.length > this.messageLimit) {
      this._sendReplies(replyTo, list)
      list = this._newReplies(replyTo)
      item = `[${branch},${ok},${steps}${rest === '' ? '' : ','}${rest}]`
    }
    list.steps = steps
    list.size += item.length + 1
    list.push(item)
  }

  _newReplies(replyTo) {
    const list = []
    list.steps = null
    list.size = 0
    list.inbox = inboxOf(replyTo)
    this.replies.set(replyTo, list)
    this._schedule()
    return list
  }

  /** One message of replies, to the reply subject `replyTo`. */
  _sendReplies(replyTo, list) {
    const text = `{"h":${JSON.stringify(this.route)},"r":[${list.join(',')}]}`
    this.kept.keep(performance.now(), list.inbox, text)
    this.out.push(replyTo, '', '', text)
  }

  /** Drops kept replies past the retention (all since a disconnection while recovering from it). */
  _trimKept() {
    const now = performance.now()
    if (this.disconnectedAt >= 0 && now > this.recovering && this.state === 'connected') this.disconnectedAt = -1
    this.kept.dropBefore((this.disconnectedAt >= 0 ? Math.min(this.disconnectedAt, now) : now) - this.retention)
  }

  /**
   * Sends the kept reply of `inbox`'s `branch` again, to `replyTo` (the subject of the message
   * that asked after it); `kept`: this.kept.of(inbox). False when none is kept.
   */
  _replyAgain(inbox, branch, kept, replyTo) {
    const found = kept.get(branch)
    if (found === undefined) return false
    const [items, at] = found
    // Its steps may be "as the item before" (0): the item goes alone, with its own.
    const item = [...items[at]]
    for (let j = at - 1; item[2] === 0 && j >= 0; j--) if (items[j][2] !== 0) item[2] = items[j][2]
    if (item[2] === 0) item[2] = []
    debug.logTransport('nats', 'sending the reply of branch %d to runtime %s again', branch, runtimeOf(inbox))
    let replies = this.replies.get(replyTo)
    if (replies === undefined) replies = this._newReplies(replyTo)
    const text = JSON.stringify(item)
    // Split like replies: however many are sent again at once, no message exceeds max_payload.
    if (replies.length > 0 && replies.size + text.length > this.messageLimit) {
      this._sendReplies(replyTo, replies)
      replies = this._newReplies(replyTo)
    }
    replies.size += text.length + 1
    replies.push(text)
    replies.steps = null
    return true
  }
}

module.exports = { Serving }
