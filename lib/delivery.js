'use strict'

// One send in flight: the flows the core's plan names, and every target's outcome.
//
// What holds:
// - Every flow (one handler of one target for one send) is its own AsyncLocalStorage store
//   while its functions run, across `await`s, timers and microtasks: a send made anywhere in
//   it knows its node (the sender), its branch and its event (the cause). The runtime enters a
//   flow's store once when the flow starts and restores the caller's once per send; the steps
//   of a flow run in the store they inherited, without entering it again.
// - A flow's steps are followed by one loop (`advance`): a function is the next step, a Promise
//   is waited for, anything else ends the flow and is its value.
// - A target's outcome is its first handler's value, or its first failure; later failures of
//   the same target add nothing. The send's result settles when every target has finished.
// Values stay JS values here; the core records ids, steps and outcomes (through the runtime's
// journal: one clock reading per finished flow gives its duration).

const { AsyncLocalStorage } = require('node:async_hooks')
const { performance } = require('node:perf_hooks')
const { HappenError, errorMessage, handlerFailed } = require('./errors')
const { checkReturnOptions } = require('./validate')
const { setKey } = require('./keyed')
const debug = require('./debug')

/** The flow a piece of code runs in, carried across `await` so sends inside it are caused by it. */
const flowStorage = new AsyncLocalStorage()

// Outcome codes of the flow journal (a failure goes to the core with its message instead).
const FULFILLED = 1
const UNMATCHED = 3
/** What a target's value holds until the target has finished. */
const PENDING = Symbol('pending')
const promiseThen = Promise.prototype.then

const stepName = (fn) => fn.name || '(anonymous)'

/**
 * One flow, and the store sends inside it read: `runtime`, `node` (the sender), `branch`,
 * `seq`, `causal`, `correlationSeq` (the cause), `origin` (what a transport gave for it).
 */
class Flow {
  constructor(result, slot, node, event, context, handler, group) {
    this.result = result
    this.node = node
    this.slot = slot
    this.branch = result._firstBranch + slot
    this.event = event
    this.context = context
    /** The name of the step that runs or ran last, and how many ran. */
    this.step = handler.name
    this.steps = 1
    /** The runtime's entry of the handler the flow started with (its `chain`: see stepOf). */
    this.handler = handler
    /** null, or what the flows of one target's several handlers share: { left, value }. */
    this.group = group
    this.order = 0
    /** When the flow started (performance.now() ms): its branch's duration runs from here. */
    this.startedAt = result._runtime._clockAt
    /** tracing: the flow's OpenTelemetry span, null when its send is not traced. */
    this.span = null
    /** metrics: the record (lib/metrics) the flow ends in, null when its send is not metered. */
    this.meter = result._meter === null ? null : result._meter.flowStarted(node.id, result._type)
  }

  // What every flow of a send shares is read from the send's result: fewer fields per flow.
  get runtime() {
    return this.result._runtime
  }

  /** What a transport gave for the event this flow serves (undefined for a local send). */
  get origin() {
    const served = this.result._served
    return served === null ? undefined : served.originOf(this.slot)
  }

  get seq() {
    return this.result._seq
  }

  get causal() {
    return this.result._causal
  }

  get correlationSeq() {
    return this.result._correlation
  }

  get type() {
    return this.result._type
  }
}

/** Runs the first step of `flow`, whose store the caller has entered, and follows it. */
function runFlow(flow, fn) {
  // tracing: a traced send's flow runs inside its span (lib/tracing), which calls back here.
  if (flow.result._trace !== null && flow.span === null) return flow.runtime._tracing.runFlow(flow, fn, runFlow)
  let value
  try {
    value = fn(flow.event, flow.context)
  } catch (error) {
    return flow.result._flowFailed(flow, error)
  }
  advance(flow, value)
}

/**
 * Where the further step `fn` of `flow` sits in its handler's `chain` (fn, name, step id by
 * step), or -1 when it is not cached. A handler's flows mostly run the same functions as
 * steps, whose names would otherwise be read each time (`fn.name` of a closure goes through
 * its scope info); a position that saw two different functions (closures made per call) is
 * marked DYNAMIC and holds no function, so the chain keeps no closure alive.
 */
function stepOf(flow, fn) {
  const at = 3 * (flow.steps - 1)
  if (at >= CACHED_STEPS * 3) return -1
  const chain = flow.handler.chain
  const cached = chain[at]
  if (cached === fn) return at
  if (cached === undefined) {
    const name = stepName(fn)
    let id
    try {
      id = flow.runtime._stepId(name)
    } catch {
      return -1 // recorded uncached, where the error fails the flow
    }
    chain[at] = fn
    chain[at + 1] = name
    chain[at + 2] = id
    return at
  }
  if (cached !== DYNAMIC) {
    chain[at] = DYNAMIC
    chain[at + 1] = chain[at + 2] = undefined
  }
  return -1
}

/** How many further steps of a handler's flows are cached, and the mark of a position that varies. */
const CACHED_STEPS = 8
const DYNAMIC = Symbol('dynamic step')

/** A flow's awaited Promise fulfilled: its continuation runs in the flow's store. */
function resumeFlow(value) {
  advance(flowStorage.getStore(), value)
}

function failFlow(error) {
  const flow = flowStorage.getStore()
  flow.result._flowFailed(flow, error)
}

/** Follows a flow: a function is the next step, a Promise is waited for, anything else ends it. */
function advance(flow, value) {
  for (;;) {
    if (typeof value === 'function') {
      const at = stepOf(flow, value)
      const name = at < 0 ? stepName(value) : flow.handler.chain[at + 1]
      try {
        flow.runtime._recordStep(flow, at < 0 ? flow.runtime._stepId(name) : flow.handler.chain[at + 2])
      } catch (error) {
        flow.step = name
        return flow.result._flowFailed(flow, error)
      }
      flow.step = name
      flow.steps++
      if (flow.span !== null) flow.span.addEvent(name) // tracing
      try {
        value = value(flow.event, flow.context)
      } catch (error) {
        return flow.result._flowFailed(flow, error)
      }
      continue
    }
    if (value !== null && typeof value === 'object') {
      let then
      try {
        then = value.then
      } catch (error) {
        return flow.result._flowFailed(flow, error)
      }
      if (then === promiseThen) {
        // A real Promise calls back once, in the store current now: this flow's.
        promiseThen.call(value, resumeFlow, failFlow)
        return
      }
      if (typeof then === 'function') return awaitThenable(flow, value, then)
    }
    return flow.result._flowDone(flow, value)
  }
}

/** A hand-written thenable may call back more than once, or throw: only its first word counts. */
function awaitThenable(flow, value, then) {
  let answered = false
  try {
    then.call(
      value,
      (next) => answered || ((answered = true), advance(flow, next)),
      (error) => answered || ((answered = true), flow.result._flowFailed(flow, error)),
    )
  } catch (error) {
    if (!answered) (answered = true), flow.result._flowFailed(flow, error)
  }
}

const batchInfo = Symbol('batch')

/** The context of a batch flow: the batch's own data at the root, each event's causal context lazily in `events`. */
class BatchContext {
  constructor(batch, node) {
    this.receivedAt = batch.timestamp
    this.node = node
    this[batchInfo] = batch
  }

  get events() {
    const batch = this[batchInfo]
    const events = new Array(batch.count)
    for (let i = 0; i < batch.count; i++) {
      events[i] = { causal: i === 0 ? batch.first : batch.causalAt(i) }
    }
    Object.defineProperty(this, 'events', { value: events, writable: true, enumerable: true, configurable: true })
    return events
  }

  /** The batch travels as its first event: sends from the flow are caused by it. */
  get causal() {
    return this[batchInfo].first
  }
}

const ignore = () => {}

/** What `await send()` gives for a send a transport held back: settled once admitted, or refused. */
class Admission {
  constructor() {
    /** How many transports hold the send back still. */
    this.held = 0
    this.resolve = null
    this.reject = null
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
    // A refused send nobody awaits (fire and forget) must not crash the process.
    this.promise.catch(ignore)
  }
}

class SendResult {
  /**
   * `targets`: the nodes by slot. The runtime sets the send's plan data (`_seq`, `_causal`,
   * `_firstBranch`, ...) before any flow starts.
   */
  constructor(runtime, targets, keyed, firstId, ids, pending) {
    this._runtime = runtime
    this._targets = targets
    this._keyed = keyed
    const n = targets.length
    /** Per slot: the target's value once finished, PENDING until then. */
    // A loop, not fill(): Array.prototype.fill is a call into C++ on every send. Sized up front
    // (pushing into [] gives a small array room for about 16).
    let values = [PENDING]
    if (n !== 1) {
      values = new Array(n)
      for (let i = 0; i < n; i++) values[i] = PENDING
    }
    this._values = values
    this._failures = null
    this._pending = pending
    this._waiters = null
    this._startedAt = 0
    // Handlers registered after this send was planned do not run for it.
    this._gen = runtime._handlerGen
    /**
     * The transport that brought the event, per target (see `served` in lib/transport.js): told
     * of each target whose flow ended, and asked what the sends of its flow carry. Else null.
     */
    this._served = null
    this._seq = 0
    this._firstBranch = 0
    this._causal = null
    this._correlation = -1
    /** What failure messages call the send's event. */
    this._type = ''
    /** tracing: the OpenTelemetry context this send's flows' spans are children of; null: untraced. */
    this._trace = null
    /** metrics: the recorder (lib/metrics) this send's flows count in; null: not metered. */
    this._meter = null
    this.id = firstId
    this._ids = ids
    /** null, or the Admission of a send a transport holds back (see hold()). */
    this._admission = null
  }

  /** Every event id of the send: one, or one per event of a batch. */
  get ids() {
    if (this._ids === null) this._ids = this.id === null ? [] : [this.id]
    else if (typeof this._ids === 'function') this._ids = this._ids()
    return this._ids
  }

  /** Whether a planned handler runs: still registered, not newer than this send, its predicate agrees. */
  _runnable(slot, entry, event) {
    // Removed since the plan, or a newer handler that reused a removed one's id.
    if (entry === undefined || entry.gen > this._gen) return false
    if (entry.predicate === null) return true
    if (!this._predicateAccepts(slot, entry, event)) return false
    this._runtime._recordHandlerStep(this._firstBranch + slot, entry)
    return true
  }

  _predicateAccepts(slot, entry, event) {
    try {
      if (!Array.isArray(event)) return Boolean(entry.predicate(event.type))
      for (let i = 0; i < event.length; i++) if (!entry.predicate(event[i].type)) return false
      return true
    } catch (error) {
      this._recordFailure(slot, '(pattern predicate)', error, this._runtime._clockAt)
      return false
    }
  }

  _flowDone(flow, value) {
    if (flow.span !== null) this._runtime._tracing.flowEnded(flow, false) // tracing
    if (flow.meter !== null) flow.meter.done(flow.startedAt) // metrics
    const group = flow.group
    if (group !== null) {
      if (flow.order === 0) group.value = value
      if (--group.left > 0) return
      value = group.value
    }
    const slot = flow.slot
    if (!this._hasFailed(slot)) {
      this._values[slot] = value
      this._runtime._recordOutcome(flow.branch, FULFILLED, flow.startedAt)
    }
    this._targetDone(slot)
  }

  _flowFailed(flow, error) {
    if (flow.span !== null) this._runtime._tracing.flowEnded(flow, true, error) // tracing
    if (flow.meter !== null) flow.meter.failed(flow.startedAt, error) // metrics
    this._recordFailure(flow.slot, flow.step, error, flow.startedAt)
    if (flow.group !== null && --flow.group.left > 0) return
    this._targetDone(flow.slot)
  }

  /** The first failure of a target is its outcome; later ones of the same target add nothing. */
  _recordFailure(slot, step, error, startedAt) {
    if (this._hasFailed(slot)) return
    const node = this._targets[slot]
    ;(this._failures || (this._failures = [])).push({ slot, node: node.id, type: this._type, step, error })
    if (debug.enabled) debug.logFailure(node.id, this._type, step, errorMessage(error))
    this._runtime._recordFailure(this._firstBranch + slot, startedAt, `${step}: ${errorMessage(error)}`)
  }

  _hasFailed(slot) {
    return this._failures?.some((f) => f.slot === slot) === true
  }

  /**
   * A target that lives elsewhere finished there: `outcome` is { ok, value, matched } or
   * { ok: false, error, step }, with `recorded: true` when the flow's runtime shares this one's
   * core and recorded the outcome there itself. Its transport calls this once per target;
   * later calls are ignored.
   */
  settleTarget(slot, outcome) {
    if (this.isDone(slot)) return
    if (outcome.recorded) {
      // The flow ran on a runtime sharing this one's core, which recorded its outcome there.
      if (outcome.ok) this._values[slot] = outcome.value
      else
        (this._failures || (this._failures = [])).push({
          slot,
          node: this._targets[slot].id,
          type: this._type,
          step: outcome.step,
          error: outcome.error,
        })
    } else if (outcome.ok) {
      this._values[slot] = outcome.value
      if (!outcome.matched && debug.enabled) debug.logUnmatched(this._type, this._targets[slot].id)
      this._runtime._recordOutcome(this._firstBranch + slot, outcome.matched ? FULFILLED : UNMATCHED, this._startedAt)
    } else {
      this._recordFailure(slot, outcome.step, outcome.error, this._startedAt)
    }
    this._targetDone(slot)
  }

  /** A finished target's outcome: { ok: true, value } or { ok: false, error, step }. */
  outcome(slot) {
    const failure = this.failureOf(slot)
    return failure === undefined
      ? { ok: true, value: this._values[slot] }
      : { ok: false, error: failure.error, step: failure.step }
  }

  /** A finished target's failure ({ error, step, … }), or undefined: its value is `value(slot)`. */
  failureOf(slot) {
    return this._failures === null ? undefined : this._failures.find((f) => f.slot === slot)
  }

  value(slot) {
    return this._values[slot]
  }

  /**
   * A transport holds this send's targets back (its bound on what waits for the wire is
   * reached): `await send()` waits until every transport that held it admits it, and rejects
   * with the error of one that refuses it (shutdown, a failed connection).
   */
  hold() {
    if (this._admission === null) this._admission = new Admission()
    this._admission.held++
  }

  /** A transport that held this send back let its targets go. */
  admit() {
    const admission = this._admission
    if (admission !== null && admission.held > 0 && --admission.held === 0) admission.resolve(this)
  }

  /** A transport that held this send back will never send it (it settled its targets with `error`). */
  refuse(error) {
    const admission = this._admission
    if (admission === null || admission.held === 0) return
    admission.held = 0
    admission.reject(error)
  }

  /** Whether the target's flow has finished. */
  isDone(slot) {
    return this._values[slot] !== PENDING
  }

  /** A target where no handler matched (or none runs any more): its result is null. */
  _unmatched(slot) {
    if (this._hasFailed(slot)) return this._targetDone(slot)
    if (debug.enabled) debug.logUnmatched(this._type, this._targets[slot].id)
    this._runtime._recordOutcome(this._firstBranch + slot, UNMATCHED, this._runtime._clockAt)
    this._targetDone(slot)
  }

  _targetDone(slot) {
    if (this._values[slot] === PENDING) this._values[slot] = null
    if (this._served !== null) this._served.targetDone(slot)
    if (--this._pending > 0 || this._waiters === null) return
    const waiters = this._waiters
    this._waiters = null
    for (const waiter of waiters) this._answer(waiter)
  }

  /**
   * Settles when every target's flow has finished: one target's result, or an object keyed by
   * node id; `{ settled: true }` gives allSettled-style entries; `{ timeout }` bounds the wait.
   */
  return(options) {
    let parsed
    try {
      parsed = checkReturnOptions(options)
    } catch (error) {
      return Promise.reject(error)
    }
    if (this._pending === 0) {
      try {
        return Promise.resolve(this._collect(parsed.settled))
      } catch (error) {
        return Promise.reject(error)
      }
    }
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, settled: parsed.settled, timer: null }
      if (parsed.timeout !== undefined) {
        // Timers take at most 2^31-1 ms (~24.8 days); a longer timeout waits that long.
        waiter.timer = setTimeout(() => this._timeOut(waiter, parsed.timeout), Math.min(parsed.timeout, 2 ** 31 - 1))
      }
      if (this._waiters === null) this._waiters = [waiter]
      else this._waiters.push(waiter)
    })
  }

  /** The causal tree of this send; null for an empty batch (nothing was sent). */
  trace() {
    return this.id === null ? null : this._runtime.trace(this.id)
  }

  _answer(waiter) {
    if (waiter.timer !== null) clearTimeout(waiter.timer)
    try {
      waiter.resolve(this._collect(waiter.settled))
    } catch (error) {
      waiter.reject(error)
    }
  }

  /**
   * `{ timeout }` rejects with TIMEOUT; with `settled: true` too it resolves instead: the finished
   * entries as they are, each node still running rejected with TIMEOUT.
   */
  _timeOut(waiter, timeout) {
    if (this._waiters === null || !this._waiters.includes(waiter)) return
    this._waiters.splice(this._waiters.indexOf(waiter), 1)
    if (waiter.settled) {
      const entries = this._collect(true)
      this._targets.forEach(({ id }, slot) => {
        if (this._isDone(slot)) return
        const reason = new HappenError(
          'TIMEOUT',
          `return() timed out after ${timeout} ms; node '${id}' was still running`,
        )
        Object.defineProperty(entries, id, {
          value: { status: 'rejected', reason },
          enumerable: true,
          writable: true,
          configurable: true,
        })
      })
      return waiter.resolve(entries)
    }
    const running = this._runningNodes()
    waiter.reject(
      new HappenError(
        'TIMEOUT',
        `return() timed out after ${timeout} ms; still running: ${running.map((id) => `'${id}'`).join(', ')}`,
        { pending: running, results: this._finishedResults() },
      ),
    )
  }

  _runningNodes() {
    return this._targets.filter((_, slot) => !this._isDone(slot)).map((node) => node.id)
  }

  _isDone(slot) {
    return this._values[slot] !== PENDING
  }

  _finishedResults() {
    const results = {}
    this._targets.forEach((node, slot) => {
      if (this._isDone(slot) && !this._hasFailed(slot)) setKey(results, node.id, this._values[slot])
    })
    return results
  }

  _collect(settled) {
    const targets = this._targets
    const failures = this._failures
    if (settled) {
      const entries = {}
      for (let slot = 0; slot < targets.length; slot++) {
        const failure = failures === null ? undefined : failures.find((f) => f.slot === slot)
        setKey(
          entries,
          targets[slot].id,
          failure ? { status: 'rejected', reason: failure.error } : { status: 'fulfilled', value: this._values[slot] },
        )
      }
      return entries
    }
    if (failures !== null) throw this._failure()
    if (!this._keyed) return this._values[0]
    const results = {}
    for (let slot = 0; slot < targets.length; slot++) setKey(results, targets[slot].id, this._values[slot])
    return results
  }

  _failure() {
    const failures = [...this._failures].sort((a, b) => a.slot - b.slot)
    const errors = {}
    for (const f of failures) setKey(errors, f.node, f.error)
    const results = {}
    this._targets.forEach((node, slot) => {
      if (!this._hasFailed(slot)) setKey(results, node.id, this._values[slot])
    })
    const describeFailure = (f) =>
      `node '${f.node}' failed on '${f.type}' at step '${f.step}': ${errorMessage(f.error)}`
    const message =
      failures.length === 1 && this._targets.length === 1
        ? `The flow in ${describeFailure(failures[0])}`
        : `${failures.length} of ${this._targets.length} nodes failed: ${failures.map(describeFailure).join('; ')}`
    return handlerFailed(message, {
      failures: failures.map(({ node, type, step, error }) => ({ node, type, step, error })),
      results,
      errors,
    })
  }
}

module.exports = { SendResult, Flow, BatchContext, flowStorage, runFlow, stepName, performance }
