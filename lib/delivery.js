'use strict'

// One send in flight: runs the flows the core's plan names and collects every target's outcome.
// Values stay JS values here; the core records ids, steps and outcomes.

const { AsyncLocalStorage } = require('node:async_hooks')
const { performance } = require('node:perf_hooks')
const { HappenError, errorMessage } = require('./errors')
const { checkReturnOptions } = require('./validate')

/** The flow a piece of code runs in, carried across `await` so sends inside it are caused by it. */
const flowStorage = new AsyncLocalStorage()

// Outcome codes of the flow journal (a failure goes to the core with its message instead).
const FULFILLED = 1
const UNMATCHED = 3

const stepName = (fn) => fn.name || '(anonymous)'

/** What a flow knows about where it runs: the node, its branch in the history, its cause. */
class FlowFrame {
  constructor(runtime, node, branch, seq, causal, correlationSeq, type) {
    this.runtime = runtime
    this.node = node
    this.branch = branch
    this.seq = seq
    this.causal = causal
    this.correlationSeq = correlationSeq
    this.type = type
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

function createContext(frame, batch) {
  return batch === null ? { causal: frame.causal, node: frame.node } : new BatchContext(batch, frame.node)
}

class SendResult {
  constructor(runtime, targets, keyed, firstId, ids) {
    this._runtime = runtime
    this._targets = targets
    this._keyed = keyed
    const n = targets.length
    this._values = n === 1 ? [null] : new Array(n).fill(null)
    // Which targets have finished; a single target is done when nothing is pending.
    this._done = n === 1 ? null : new Array(n).fill(false)
    this._failures = null
    this._flowsLeft = null
    this._pending = 0
    this._waiters = null
    this._startedAt = 0
    // robustness (issue 3): handlers registered after this send was planned do not run for it.
    this._gen = runtime._handlerGen
    /** Told of each target whose flow ended (a transport answering the sender elsewhere per node). */
    this._onTarget = null
    /** What failure messages call the send's event (set by the runtime). */
    this._type = ''
    this.id = firstId
    this._ids = ids
  }

  /** Every event id of the send: one, or one per event of a batch. */
  get ids() {
    if (this._ids === null) this._ids = this.id === null ? [] : [this.id]
    else if (typeof this._ids === 'function') this._ids = this._ids()
    return this._ids
  }

  /**
   * Starts the flows of one target. `handlers` is what the core planned, in registration
   * order: one handler id, or an array of them.
   */
  _start(slot, frame, handlers, event, context, batch) {
    if (typeof handlers === 'number') {
      const entry = this._runtime._handlers[handlers]
      if (this._runnable(slot, frame, entry, event)) return this._run(slot, 0, frame, entry, event, context)
    } else {
      // robustness (issue 3): choose every handler first and count their flows before any runs;
      // counting as they ran let a first flow that finished synchronously end the target
      // (and record it fulfilled) before a later handler of the same node had run or failed.
      const entries = []
      for (let i = 0; i < handlers.length; i++) {
        const entry = this._runtime._handlers[handlers[i]]
        if (this._runnable(slot, frame, entry, event)) entries.push(entry)
      }
      if (entries.length > 1) {
        if (this._flowsLeft === null) this._flowsLeft = new Array(this._targets.length).fill(1)
        this._flowsLeft[slot] = entries.length
      }
      for (let order = 0; order < entries.length; order++) {
        this._run(slot, order, frame, entries[order], event, order === 0 ? context : createContext(frame, batch))
      }
      if (entries.length > 0) return
    }
    if (this._hasFailed(slot)) this._targetDone(slot)
    else this._unmatched(slot, frame)
  }

  /** Whether a planned handler runs: still registered, not newer than this send, its predicate agrees. */
  _runnable(slot, frame, entry, event) {
    // Removed since the plan, or a newer handler that reused a removed one's id (issue 3).
    if (entry === undefined || entry.gen > this._gen) return false
    if (entry.predicate === null) return true
    if (!this._predicateAccepts(slot, frame, entry, event)) return false
    this._runtime._recordHandlerStep(frame, entry)
    return true
  }

  _predicateAccepts(slot, frame, entry, event) {
    try {
      if (!Array.isArray(event)) return Boolean(entry.predicate(event.type))
      for (let i = 0; i < event.length; i++) if (!entry.predicate(event[i].type)) return false
      return true
    } catch (error) {
      this._recordFailure(slot, frame, '(pattern predicate)', error)
      return false
    }
  }

  _run(slot, order, frame, handler, event, context) {
    let value
    try {
      value = flowStorage.run(frame, handler.fn, event, context)
    } catch (error) {
      return this._flowFailed(slot, order, frame, handler.name, error)
    }
    this._advance(slot, order, frame, handler.name, event, context, value, 1)
  }

  /**
   * Follows a flow: a function is the next step, a Promise is waited for, anything else ends it.
   * `lastStep` is the name of the step that produced `value`.
   */
  _advance(slot, order, frame, lastStep, event, context, value, steps) {
    for (;;) {
      if (typeof value === 'function') {
        try {
          this._runtime._recordStep(frame, value, steps)
        } catch (error) {
          return this._flowFailed(slot, order, frame, stepName(value), error)
        }
        lastStep = stepName(value)
        steps++
        try {
          value = flowStorage.run(frame, value, event, context)
        } catch (error) {
          return this._flowFailed(slot, order, frame, lastStep, error)
        }
        continue
      }
      if (value !== null && typeof value === 'object') {
        let then
        try {
          then = value.then
        } catch (error) {
          return this._flowFailed(slot, order, frame, lastStep, error)
        }
        if (typeof then === 'function') {
          // A hand-written thenable may call back more than once, or throw: only the first
          // word counts, as with a real Promise.
          const step = lastStep
          let answered = false
          try {
            then.call(
              value,
              (next) => answered || ((answered = true), this._advance(slot, order, frame, step, event, context, next, steps)),
              (error) => answered || ((answered = true), this._flowFailed(slot, order, frame, step, error)),
            )
          } catch (error) {
            if (!answered) (answered = true), this._flowFailed(slot, order, frame, step, error)
          }
          return
        }
      }
      return this._flowDone(slot, order, frame, value)
    }
  }

  _flowDone(slot, order, frame, value) {
    if (order === 0) this._values[slot] = value
    if (this._flowsLeft !== null && --this._flowsLeft[slot] > 0) return
    if (!this._hasFailed(slot)) this._runtime._recordOutcome(frame.branch, FULFILLED, this._startedAt)
    this._targetDone(slot)
  }

  _flowFailed(slot, order, frame, step, error) {
    this._recordFailure(slot, frame, step, error)
    if (this._flowsLeft !== null && --this._flowsLeft[slot] > 0) return
    this._targetDone(slot)
  }

  /** The first failure of a target is its outcome; later ones of the same target add nothing. */
  _recordFailure(slot, frame, step, error) {
    if (this._hasFailed(slot)) return
    ;(this._failures || (this._failures = [])).push({ slot, node: frame.node.id, type: frame.type, step, error })
    this._runtime._recordFailure(frame.branch, this._startedAt, `${step}: ${errorMessage(error)}`)
  }

  _hasFailed(slot) {
    return this._failures !== null && this._failures.some((f) => f.slot === slot)
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
      else (this._failures || (this._failures = [])).push({ slot, node: this._targets[slot].id, type: this._type, step: outcome.step, error: outcome.error })
    } else if (outcome.ok) {
      this._values[slot] = outcome.value
      this._runtime._recordOutcome(this._firstBranch + slot, outcome.matched ? FULFILLED : UNMATCHED, this._startedAt)
    } else {
      const frame = { node: this._targets[slot], type: this._type, branch: this._firstBranch + slot }
      this._recordFailure(slot, frame, outcome.step, outcome.error)
    }
    this._targetDone(slot)
  }

  /** A finished target's outcome: { ok: true, value } or { ok: false, error, step }. */
  outcome(slot) {
    const failure = this._failures === null ? undefined : this._failures.find((f) => f.slot === slot)
    return failure === undefined ? { ok: true, value: this._values[slot] } : { ok: false, error: failure.error, step: failure.step }
  }

  /** Whether the target's flow has finished. */
  isDone(slot) {
    return this._isDone(slot)
  }

  /** A target where no handler matched: its result is null. */
  _unmatched(slot, frame) {
    this._runtime._recordOutcome(frame.branch, UNMATCHED, this._startedAt)
    this._targetDone(slot)
  }

  _targetDone(slot) {
    if (this._done !== null) this._done[slot] = true
    if (this._onTarget !== null) this._onTarget(slot)
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
      ;(this._waiters || (this._waiters = [])).push(waiter)
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

  _timeOut(waiter, timeout) {
    if (this._waiters === null || !this._waiters.includes(waiter)) return
    this._waiters.splice(this._waiters.indexOf(waiter), 1)
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
    return this._done === null ? this._pending === 0 : this._done[slot]
  }

  _finishedResults() {
    const results = {}
    this._targets.forEach((node, slot) => {
      if (this._isDone(slot) && !this._hasFailed(slot)) results[node.id] = this._values[slot]
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
        entries[targets[slot].id] = failure
          ? { status: 'rejected', reason: failure.error }
          : { status: 'fulfilled', value: this._values[slot] }
      }
      return entries
    }
    if (failures !== null) throw this._failure()
    if (!this._keyed) return this._values[0]
    const results = {}
    for (let slot = 0; slot < targets.length; slot++) results[targets[slot].id] = this._values[slot]
    return results
  }

  _failure() {
    const failures = [...this._failures].sort((a, b) => a.slot - b.slot)
    const errors = {}
    for (const f of failures) errors[f.node] = f.error
    const results = {}
    this._targets.forEach((node, slot) => {
      if (!this._hasFailed(slot)) results[node.id] = this._values[slot]
    })
    const describeFailure = (f) => `node '${f.node}' failed on '${f.type}' at step '${f.step}': ${errorMessage(f.error)}`
    const message =
      failures.length === 1 && this._targets.length === 1
        ? `The flow in ${describeFailure(failures[0])}`
        : `${failures.length} of ${this._targets.length} nodes failed: ${failures.map(describeFailure).join('; ')}`
    return new HappenError('HANDLER_FAILED', message, {
      cause: failures[0].error,
      results,
      errors,
      failures: failures.map(({ node, type, step, error }) => ({ node, type, step, error })),
    })
  }
}

module.exports = { SendResult, FlowFrame, BatchContext, flowStorage, stepName, performance }
