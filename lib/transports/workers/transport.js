'use strict'

// The worker-threads transport: nodes whose handlers run in other threads of this process.
//
// What holds:
// - The threads share one core (src/threads.rs): ids, causality, dispatch and the causal
//   history are one for all of them. A node lives in exactly one thread (its place); every
//   other thread reaches it through a handle, by id.
// - A send's targets in another thread cost one message per thread per send: the core's plan
//   for them (node, branch, handler ids), the causal context and the input, by structured
//   clone (see wire.js; refused with NOT_SERIALIZABLE before anything is delivered). That
//   thread runs exactly the planned handlers on the planned branches (no second dispatch),
//   records steps and outcomes straight into the shared core, and answers per target.
// - A thread that goes away fails only its own nodes' entries, with NODE_LOST, as soon as the
//   thread that started it sees it end; its nodes leave the core, and every other thread is
//   told so its waiting entries fail too.
// - Nothing here keeps a thread alive: inboxes are weak, and a worker this runtime started is
//   ref'd only while this runtime waits for answers from it.
//
// Messages (frames of wire.js: a JSON header and a structured-clone body, posted with
// native.post to a place's inbox):
//   RUN  { k, id, from, seq, correlation, type, causal, batchCause, started, targets, trace }
//        targets: [[node index, node id, branch, handlers]]; trace: the W3C trace context the
//        flows' spans continue ({ traceparent, tracestate }) or null; body: the encoded event(s)
//   DONE { k, answers: [[run id, target position, ok, step]] }; body: per answer its value or
//        the error's description
//   LOST { k, place }  a place has left: fail what waits on it, forget its handles
//   GONE { k, ids }    nodes of the sender's thread were disposed: forget their handles

const native = require('../../native')
const { HappenError } = require('../../errors')
const { performance } = require('node:perf_hooks')
const { encode, serialize, frame, headerOf, bodyOf, describeError, rebuildError } = require('./wire')
const { BranchTable, TurnTable } = require('../../tables')

const RUN = 1
const DONE = 2
const LOST = 3
const GONE = 4

/** This thread's performance.now() against the core's monotonic clock (one clock for all threads). */
const CLOCK_OFFSET = performance.now() - native.monotonicMs()

class ThreadTransport {
  constructor() {
    this.type = 'threads'
    this.place = 'another thread'
    this.host = null
    this.core = -1
    this.here = -1
    /** Handles of nodes in other threads, by id. */
    this.handles = new Map()
    /** RUN messages sent and not fully answered: id -> { result, group, place, left }. */
    this.waiting = new BranchTable()
    this.nextRun = 1
    /** Answers to send, by destination place: [run id, position, ok, value | error, step]. */
    this.answers = new TurnTable()
    /** Flows served here whose end is still to be answered: holder, slot, holder, slot... */
    this.ended = []
    this.scheduled = false
    /** Workers this runtime started, by place, and how many RUNs wait on each. */
    this.workers = new Map()
    this.closed = false
    /** Ids of this thread's nodes disposed this turn, told to the other threads in one message. */
    this.gone = null
    this._flush = () => this._sendAnswers()
    this._tellGone = () => this._announceGone()
  }

  attach(host) {
    this.host = host
    this.core = host.core
    this.here = host.place
    native.openPlace(this.core, this.here, (messages) => this._receive(messages))
  }

  /** The handle of the node `id` when it lives in another thread of this core. */
  resolve(id) {
    const known = this.handles.get(id)
    const where = native.locateNode(this.core, id)
    if (where === null || where[1] === this.here) {
      if (known !== undefined) this._forget(known)
      return undefined
    }
    if (known !== undefined && known._index === where[0] && known._place === where[1]) return known
    if (known !== undefined) this._forget(known)
    return this._handle(where[0], id, where[1])
  }

  everyone() {
    const elsewhere = native.nodesElsewhere(this.core, this.here)
    const handles = []
    for (let i = 0; i < elsewhere.length; i += 2) {
      const id = native.nodeName(this.core, elsewhere[i])
      if (id === null) continue
      const handle = this.resolve(id)
      if (handle !== undefined) handles.push(handle)
    }
    return handles
  }

  beforeCreate() {}

  nodeCreated() {}

  nodeDisposed(node) {
    if (this.closed) return
    if (this.gone === null) {
      this.gone = []
      queueMicrotask(this._tellGone)
    }
    this.gone.push(node.id)
  }

  _announceGone() {
    const ids = this.gone
    this.gone = null
    if (this.closed || ids === null) return
    const bytes = frame({ k: GONE, ids }, null)
    for (const other of native.openPlaces(this.core)) if (other !== this.here) native.post(this.core, other, bytes)
  }

  encode(input) {
    return Array.isArray(input) ? encode(input, 'events', 'The batch') : encode(input, 'event', 'The event')
  }

  start(delivery) {
    const { result, slots } = delivery
    const byPlace = new Map()
    for (const target of slots) {
      if (target.handlers === null) {
        // No handler there matches: settled here, as a local target would be.
        result.settleTarget(target.slot, { ok: true, value: null, matched: false })
        continue
      }
      const place = target.node._place
      const group = byPlace.get(place)
      if (group === undefined) byPlace.set(place, [target])
      else group.push(target)
    }
    for (const [place, group] of byPlace) this._run(delivery, place, group)
  }

  _run(delivery, place, group) {
    const { result, wire, causal, batch, seq, correlation, type, startedAt, trace } = delivery
    const id = this.nextRun++
    const message = {
      k: RUN,
      id,
      from: this.here,
      seq,
      correlation,
      type,
      causal,
      batchCause: batch === null ? null : batch.cause,
      started: startedAt - CLOCK_OFFSET,
      targets: group.map((t) => [t.node._index, t.node.id, t.branch, t.handlers]),
      trace,
    }
    if (this.closed || !native.post(this.core, place, frame(message, wire))) {
      for (const target of group) result.settleTarget(target.slot, lost(target.node, 'before the event reached it'))
      return
    }
    this.waiting.set(id, { result, group, place, left: group.length })
    this._hold(place)
  }

  /** Messages posted to this thread, oldest first. */
  _receive(messages) {
    for (let i = 0; i < messages.length; i++) {
      const bytes = messages[i]
      const message = headerOf(bytes)
      if (message.k === RUN) this._serve(message, bytes)
      else if (message.k === DONE) this._settle(message.answers, bodyOf(bytes))
      else if (message.k === LOST) this.placeLost(message.place, message.reason)
      else if (message.k === GONE) this._forgetIds(message.ids)
    }
  }

  /** Runs the flows a RUN names on this thread's nodes. */
  _serve(message, bytes) {
    const { targets, from, id } = message
    const input = bodyOf(bytes)
    const nodes = []
    const branches = []
    const handlers = []
    const positions = []
    for (let i = 0; i < targets.length; i++) {
      const [index, nodeId, branch, planned] = targets[i]
      const node = this.host.localNode(nodeId)
      if (node === undefined || node._index !== index) {
        this._answer(
          from,
          [id, i, false, '(delivery)'],
          describeError(new HappenError('NODE_LOST', `Node '${nodeId}' left its thread before the event reached it`)),
        )
        continue
      }
      nodes.push(node)
      branches.push(branch)
      handlers.push(planned)
      positions.push(i)
    }
    if (nodes.length === 0) return
    const holder = { results: null, from, id, positions }
    holder.results = this.host.runPlanned({
      nodes,
      branches,
      handlers,
      input,
      causal: message.causal,
      batchCause: message.batchCause,
      seq: message.seq,
      correlation: message.correlation,
      type: message.type,
      startedAt: message.started + CLOCK_OFFSET,
      trace: message.trace,
      onTarget: (i) => {
        this.ended.push(holder, i)
        this._schedule()
      },
    })
  }

  _answer(place, answer, value) {
    this._queueAnswer(place, answer, value)
    this._schedule()
  }

  /** Queues an answer [run id, position, ok, step] and its value (or error description). */
  _queueAnswer(place, answer, value) {
    const list = this.answers.get(place)
    if (list === undefined) this.answers.set(place, { answers: [answer], values: [value] })
    else {
      list.answers.push(answer)
      list.values.push(value)
    }
  }

  _schedule() {
    if (this.scheduled) return
    this.scheduled = true
    queueMicrotask(this._flush)
  }

  /** Sends this turn's answers: the journal reaches the core first, so traces see the steps. */
  _sendAnswers() {
    this.scheduled = false
    const ended = this.ended
    this.ended = []
    for (let i = 0; i < ended.length; i += 2) {
      const holder = ended[i]
      const target = ended[i + 1]
      const outcome = holder.results[target].outcome(0)
      const position = holder.positions[target]
      if (outcome.ok) this._queueAnswer(holder.from, [holder.id, position, true, null], outcome.value)
      else
        this._queueAnswer(holder.from, [holder.id, position, false, outcome.step ?? null], describeError(outcome.error))
    }
    if (this.answers.size === 0) return
    this.host.flushJournal()
    for (const [place, { answers, values }] of this.answers) {
      let body
      try {
        body = encode(values, 'result', 'A result')
      } catch {
        for (let i = 0; i < answers.length; i++) cloneable(answers[i], values, i)
        body = encode(values, 'result', 'A result')
      }
      native.post(this.core, place, frame({ k: DONE, answers }, body))
    }
    this.answers.clear()
  }

  _settle(answers, values) {
    for (let i = 0; i < answers.length; i++) {
      const [id, position, ok, step] = answers[i]
      const value = values[i]
      const run = this.waiting.get(id)
      if (run === undefined) continue
      const target = run.group[position]
      run.result.settleTarget(
        target.slot,
        ok
          ? { ok: true, value, recorded: true }
          : { ok: false, error: rebuildError(value, target.node.id), step: step ?? '(unknown)', recorded: true },
      )
      if (--run.left === 0) this._finished(id, run)
    }
  }

  _finished(id, run) {
    this.waiting.delete(id)
    this._release(run.place)
  }

  /** A place has left the core: what waits on it fails with NODE_LOST, its handles go. */
  placeLost(place, reason = null) {
    for (const [id, run] of this.waiting) {
      if (run.place !== place) continue
      for (const target of run.group) {
        if (!run.result.isDone(target.slot))
          run.result.settleTarget(target.slot, lost(target.node, 'while its flow ran', reason))
      }
      this._finished(id, run)
    }
    for (const handle of [...this.handles.values()]) if (handle._place === place) this._forget(handle)
  }

  /** Tells every other open place that `place` has left. */
  announceLost(place, reason = null) {
    const bytes = frame({ k: LOST, place, reason: reason === null ? null : String(reason) }, null)
    for (const other of native.openPlaces(this.core)) {
      if (other !== this.here && other !== place) native.post(this.core, other, bytes)
    }
  }

  _forgetIds(ids) {
    for (const id of ids) {
      const handle = this.handles.get(id)
      if (handle !== undefined) this._forget(handle)
    }
  }

  _handle(index, id, place) {
    const handle = this.host.handleAt(index, id)
    Object.defineProperty(handle, '_place', { value: place })
    this.handles.set(id, handle)
    return handle
  }

  _forget(handle) {
    if (this.handles.get(handle.id) === handle) this.handles.delete(handle.id)
    this.host.releaseHandle(handle)
  }

  /** A worker this runtime started is kept alive while answers from it are awaited. */
  _hold(place) {
    const worker = this.workers.get(place)
    if (worker !== undefined && worker.waiting++ === 0) worker.thread.ref()
  }

  _release(place) {
    const worker = this.workers.get(place)
    if (worker !== undefined && --worker.waiting === 0) worker.thread.unref()
  }

  flushSteps() {}

  ready() {
    return Promise.resolve()
  }

  async close() {
    if (this.closed) return
    this.closed = true
    if (this.scheduled) this._sendAnswers()
    native.closeInbox(this.core, this.here)
    for (const [id, run] of this.waiting) {
      for (const target of run.group) {
        if (!run.result.isDone(target.slot)) {
          run.result.settleTarget(target.slot, {
            ok: false,
            error: new HappenError(
              'SHUTDOWN',
              `The runtime was shut down while node '${target.node.id}' (in another thread) ran its flow`,
            ),
            step: '(shutdown)',
          })
        }
      }
      this._finished(id, run)
    }
    const exits = [...this.workers.values()].map((worker) => worker.terminate())
    await Promise.all(exits)
    // A joined runtime's nodes are disposed by its shutdown right after this; the place
    // itself leaves the core when its thread ends (see workers.js).
    if (this.here !== 0) this.announceLost(this.here)
  }
}

function lost(node, when, reason = null) {
  const why = reason === null ? '' : ` (${reason instanceof Error ? `${reason.name}: ${reason.message}` : reason})`
  return {
    ok: false,
    error: new HappenError('NODE_LOST', `Node '${node.id}' was lost ${when}: its thread exited${why}`),
    step: '(thread exited)',
  }
}

/** An answer whose value structured clone cannot carry becomes that target's failure. */
function cloneable(answer, values, i) {
  if (!answer[2]) return
  try {
    serialize(values[i], 'result', 'The result')
  } catch (error) {
    answer[2] = false
    answer[3] = '(result)'
    values[i] = describeError(error)
  }
}

module.exports = { ThreadTransport }
