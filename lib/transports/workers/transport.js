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
//   DONE { k, answers: [[run id, target position, ok, step, recorded?]] }; body: per answer its
//        value or the error's description. `recorded` 0: the flow never ran (its failure is
//        for the sender to record in the core); absent: the serving thread recorded it.
//   LOST { k, place }  a place has left: fail what waits on it, forget its handles
//   GONE { k, ids }    nodes of the sender's thread were disposed: forget their handles
//
// What arrives is decoded under a guard: a header that cannot be read is dropped (and logged
// under NODE_DEBUG=happen), a body that cannot be read fails the entries its message carries
// with NOT_SERIALIZABLE naming the node, never the thread.

const native = require('../../native')
const debug = require('../../debug')
const { HappenError, errorMessage } = require('../../errors')
const { performance } = require('node:perf_hooks')
const { threadId } = require('node:worker_threads')
const {
  DESCRIPTION_LEVELS,
  encode,
  serialize,
  frame,
  headerOf,
  bodyOf,
  describeError,
  rebuildError,
} = require('./wire')
const { BranchTable, TurnTable } = require('../../tables')
const { watchWorkers } = require('../../metrics')

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
    /** metrics: reports the started threads' queue depth (lib/metrics), null when the runtime has none. */
    this.meter = watchWorkers(host._runtime._metrics, this)
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

  /** The input as it crosses; the event (and a batch's array) are carriers around payloads. */
  encode(input) {
    return Array.isArray(input) ? encode(input, 'events', 'The batch', 2) : encode(input, 'event', 'The event', 1)
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
      let message
      try {
        message = headerOf(bytes)
      } catch (error) {
        if (debug.enabled) debug.logTransport('threads', 'dropped a message it could not read: %s', describe(error))
        continue
      }
      if (message.k === RUN) this._serve(message, bytes)
      else if (message.k === DONE) this._done(message.answers, bytes)
      else if (message.k === LOST) this.placeLost(message.place, message.reason)
      else if (message.k === GONE) this._forgetIds(message.ids)
    }
  }

  /** Runs the flows a RUN names on this thread's nodes. */
  _serve(message, bytes) {
    const { targets, from, id } = message
    let input
    try {
      input = bodyOf(bytes)
    } catch (error) {
      this._undecodable(message, error)
      return
    }
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
          [id, i, false, '(delivery)', 0],
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

  /** A RUN whose input this thread cannot decode: each target fails, naming the sender. */
  _undecodable(message, error) {
    const { targets, from, id, causal, type } = message
    const what = type === null ? 'A batch of mixed types' : `The input of '${type}'`
    const sender = causal?.sender == null ? 'outside any node' : `node '${causal.sender}'`
    for (let i = 0; i < targets.length; i++) {
      const failure = new HappenError(
        'NOT_SERIALIZABLE',
        `${what} sent to node '${targets[i][1]}' from ${sender} could not be decoded in thread ${threadId}: ${describe(error)}`,
      )
      this._answer(from, [id, i, false, '(delivery)', 0], describeError(failure))
    }
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
      native.post(this.core, place, frame({ k: DONE, answers }, answerBody(answers, values)))
    }
    this.answers.clear()
  }

  /** A DONE: its answers settle their targets; a body this thread cannot decode fails them all. */
  _done(answers, bytes) {
    let values
    try {
      values = bodyOf(bytes)
    } catch (error) {
      values = answers.map(([id, position, ok]) => {
        const node = this.waiting.get(id)?.group[position]?.node.id
        const what = `The ${ok ? 'result' : 'error'} of node '${node}'`
        return describeError(
          new HappenError('NOT_SERIALIZABLE', `${what} could not be decoded in thread ${threadId}: ${describe(error)}`),
        )
      })
      for (const answer of answers) {
        answer[2] = false
        answer[3] = '(result)'
      }
    }
    this._settle(answers, values)
  }

  _settle(answers, values) {
    for (let i = 0; i < answers.length; i++) {
      const [id, position, ok, step, recorded] = answers[i]
      const value = values[i]
      const run = this.waiting.get(id)
      const target = run?.group[position]
      if (target === undefined) continue
      run.result.settleTarget(
        target.slot,
        ok
          ? { ok: true, value, recorded: true }
          : {
              ok: false,
              error: rebuildError(value, target.node.id),
              step: step ?? '(unknown)',
              recorded: recorded !== 0,
            },
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
    if (this.meter !== null) this.meter.close() // metrics
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

/**
 * The body of a DONE: the answers' values as they cross (the array of them is one carrier
 * level). A value that cannot cross becomes its answer's failure, so the body always encodes.
 */
function answerBody(answers, values) {
  try {
    return encode(values, 'result', 'A result', 1)
  } catch {
    for (let i = 0; i < answers.length; i++) crossable(answers[i], values, i)
  }
  // Every answer is checked now (an error's description as structured clone has it).
  try {
    return encode(values, 'result', 'A result', 1 + DESCRIPTION_LEVELS, false)
  } catch (error) {
    // Only a value that changes between two reads (a getter) gets here: every answer fails.
    for (let i = 0; i < answers.length; i++) refuse(answers[i], values, i, error)
    return encode(values, 'result', 'A result', 1 + DESCRIPTION_LEVELS, false)
  }
}

/** An answer whose value (or error) structured clone cannot carry becomes that target's failure. */
function crossable(answer, values, i) {
  try {
    if (answer[2]) serialize(values[i], 'result', 'The result')
    else serialize(values[i], 'error', 'The error', DESCRIPTION_LEVELS, false)
  } catch (error) {
    refuse(answer, values, i, error)
  }
}

/** The answer fails with NOT_SERIALIZABLE (`error`, or one naming it). */
function refuse(answer, values, i, error) {
  const refusal =
    error instanceof HappenError && error.code === 'NOT_SERIALIZABLE'
      ? error
      : new HappenError('NOT_SERIALIZABLE', `The result cannot cross to another thread: ${describe(error)}`)
  answer[2] = false
  answer[3] = '(result)'
  values[i] = describeError(refusal)
}

/** What went wrong (decoding, encoding), as text for a message; never throws. */
function describe(error) {
  try {
    if (error instanceof Error) return `${error.name}: ${error.message}`
  } catch {}
  return errorMessage(error)
}

module.exports = { ThreadTransport }
