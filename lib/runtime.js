'use strict'

const native = require('./native')
const { HappenError, invalidArg, fromNative } = require('./errors')
const {
  checkEvent,
  checkBatch,
  checkNodeId,
  checkNodeOptions,
  checkHandler,
  checkPattern,
  checkConfig,
  checkLiveTargets,
  checkLiveMembers,
} = require('./validate')
const { trimTail } = require('./lifecycle')
const { treeFromWire } = require('./trace')
const debug = require('./debug')
const {
  SendResult,
  FlowFrame,
  BatchContext,
  flowStorage,
  stepName,
  performance,
} = require('./delivery')

const EVERY_NODE = null
/** The path of a root event sent from outside any node; root paths are shared and frozen. */
const NO_PATH = Object.freeze([])
/** NATS: why a send to a remote node is refused as a rejected promise rather than a throw. */
const REJECTED_SENDS = new Set(['NOT_SERIALIZABLE', 'CONNECTION_FAILED', 'PAYLOAD_TOO_LARGE'])
/**
 * Flow steps and outcomes wait in a journal of [branch, code, value] entries and reach the core
 * with the next send (or trace) instead of costing a call each. Codes: 1 fulfilled, 2 rejected,
 * 3 unmatched (value: duration in ms), 4 a further flow step (value: step name id).
 */
const JOURNAL_SIZE = 3 * 512
const STEP = 4
const MAX_FLOW_STEPS = native.maxFlowSteps()
/** Frees a runtime's core when the runtime is collected without a shutdown(). */
const releaseWhenCollected = new FinalizationRegistry((core) => native.dropCore(core))
/** Where a send's targets start in `io`, after its numeric inputs (see binding::dispatch). */
const INPUT_HEADER = 8
/** Where the per-target entries of a plan start in `io`. */
const PLAN_HEADER = 6
/** The core's monotonic clock against performance.now(): both read CLOCK_MONOTONIC, so one offset holds. */
const CLOCK_OFFSET = performance.now() - native.monotonicMs()
/**
 * robustness (issue 3): how many sends may nest synchronously (`_syncDepth`: a handler sending
 * to a node whose handler sends...) before the inner flows start on a fresh stack
 * (setImmediate), so a cycle of sends cannot overflow the stack; about 1.5 KB of stack a level.
 */
const MAX_SYNC_DEPTH = 64

/** Runs a call into the core, turning its errors into happen's. */
function guard(call) {
  try {
    return call()
  } catch (error) {
    throw fromNative(error)
  }
}

/** The causal contexts of a batch, built on demand from the batch's one record. */
class BatchInfo {
  /** `cause`: the causal context of the flow that sent the batch, null for a root batch. */
  constructor(runtime, firstSeq, events, first, cause) {
    this.runtime = runtime
    this.firstSeq = firstSeq
    this.count = events.length
    this.events = events
    this.first = first
    this.cause = cause
    this.timestamp = first.timestamp
  }

  /**
   * Mirrors the core's rule (Delivery::causality): a member's own ids are its own; a member
   * that names none is caused by the sending flow, or is its own root; one that names only
   * its cause takes the correlation the core gave it.
   */
  causalAt(index) {
    const first = this.first
    const event = this.events[index]
    const runtime = this.runtime
    const seq = this.firstSeq + index
    const id = runtime._prefix + seq
    const cause = this.cause
    let correlationId = event.correlationId
    if (correlationId == null) {
      correlationId = event.causationId != null
        ? guard(() => native.eventCorrelationId(runtime._core, seq)) ?? id
        : cause === null ? id : cause.correlationId
    }
    return {
      id,
      sender: first.sender,
      causationId: event.causationId ?? (cause === null ? null : cause.id),
      correlationId,
      path: first.path,
      timestamp: first.timestamp,
    }
  }
}

class Node {
  constructor(runtime, id, index) {
    this.id = id
    Object.defineProperties(this, {
      _runtime: { value: runtime },
      _index: { value: index, writable: true },
      _rootPath: { value: Object.freeze([id]) },
    })
  }

  getId() {
    return this.id
  }

  /** Registers a handler for events whose type matches `pattern`; returns its remover. */
  on(pattern, handler) {
    return this._runtime._on(this, pattern, handler)
  }

  /** `send(event | events)` to this node, or `send(target, event | events)` with this node as sender. */
  send(targetOrEvent, events) {
    const runtime = this._runtime
    if (arguments.length < 2) return runtime._send(this, [this], false, targetOrEvent)
    const { nodes, keyed } = runtime._resolveTargets(targetOrEvent)
    return runtime._send(this, nodes, keyed, events)
  }

  /** Runs this node's flow for the event(s) now and resolves to its result. */
  process(eventOrEvents) {
    try {
      return this._runtime._deliver(this, [this], false, eventOrEvents).return()
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Delivers the event to every node of the runtime. */
  broadcast(event) {
    const runtime = this._runtime
    if (Array.isArray(event)) throw invalidArg('event', 'a single event object (broadcast takes no batches)', event)
    if (this._index < 0) runtime._assertLive(this, 'broadcast')
    return runtime._send(this, EVERY_NODE, true, event)
  }

  /** Removes the node and releases every handler it holds. */
  dispose() {
    this._runtime._dispose(this)
  }

  toJSON() {
    return { id: this.id }
  }
}

/** Several nodes as one receiver: `on` registers on each, `send` fans out to all. */
class NodeArray {
  constructor(nodes) {
    Object.defineProperty(this, 'nodes', { value: Object.freeze([...nodes]), enumerable: true })
    Object.defineProperty(this, '_runtime', { value: nodes[0]._runtime })
  }

  get length() {
    return this.nodes.length
  }

  [Symbol.iterator]() {
    return this.nodes[Symbol.iterator]()
  }

  on(pattern, handler) {
    checkPattern(pattern)
    checkHandler(handler)
    // NATS: a remote node's handlers are registered in its own process.
    const removers = this.nodes.filter((node) => node._remote !== true).map((node) => node.on(pattern, handler))
    return () => removers.forEach((remove) => remove())
  }

  send(eventOrEvents) {
    return this._runtime._send(null, this.nodes, true, eventOrEvents)
  }

  /** Runs every node's flow and resolves to the results keyed by node id. */
  process(eventOrEvents) {
    try {
      return this._runtime._deliver(null, this.nodes, true, eventOrEvents).return()
    } catch (error) {
      return Promise.reject(error)
    }
  }
}

class Runtime {
  constructor(config) {
    const { historySize, transport } = checkConfig(config)
    this._core = native.createCore(historySize)
    this._prefix = native.idPrefix(this._core) + '-'
    releaseWhenCollected.register(this, this._core, this)
    this._io = new Float64Array(1024)
    this._journal = new Float64Array(JOURNAL_SIZE)
    this._journalLength = 0
    // While a send starts its flows, the outcome of a flow that finishes at once waits in the
    // journal without a duration; the loop gives it one when the flow's target is done
    // (_settleSince). `_journalResets` counts the journal's emptyings, so a mark stays valid.
    this._syncDepth = 0
    this._syncStart = 0
    this._journalResets = 0
    this._handlers = []
    this._nodesByIndex = []
    this._nodesById = new Map()
    this._typeIds = new Map()
    this._stepIds = new Map()
    this._closed = false
    // robustness (issue 3): a counter stamped on each handler so a send runs only handlers
    // registered before it.
    this._handlerGen = 0
    // NATS transport hook (issue 5): everything about it lives in lib/nats.js.
    this._transport = null
    if (transport.type === 'nats') {
      const { NatsTransport } = require('./nats')
      this._transport = new NatsTransport(this, transport, historySize)
      // `await initializeHappen({ transport: nats })` waits for the connection and rejects
      // promptly (CONNECTION_FAILED) when the server is unreachable; the thenable goes away
      // once settled, so the runtime itself is what the await gives.
      Object.defineProperty(this, 'then', {
        configurable: true,
        writable: true,
        value: (onFulfilled, onRejected) =>
          this._transport.flush().then(() => {
            delete this.then
            return this
          }, (error) => {
            delete this.then
            throw error
          }).then(onFulfilled, onRejected),
      })
    }
    // Usable unbound, as the top-level exports and destructuring expect.
    for (const name of ['createNode', 'createNodeArray', 'node', 'trace', 'shutdown', 'ready']) this[name] = this[name].bind(this)
  }

  createNode(id, options) {
    this._assertOpen('createNode')
    checkNodeId(id)
    checkNodeOptions(options)
    // NATS hook: a node of this id known in another process (it moved here) stops being remote.
    if (this._transport !== null) this._transport.beforeCreate(id)
    const index = guard(() => native.createNode(this._core, id))
    const node = new Node(this, id, index)
    this._nodesByIndex[index] = node
    this._nodesById.set(id, node)
    if (this._transport !== null) this._transport.nodeCreated(node)
    return node
  }

  createNodeArray(nodes) {
    return createNodeArray(nodes)
  }

  /** The node with this id (a local node is itself its handle; under NATS, any other id is a remote handle). */
  node(id) {
    this._assertOpen('node')
    checkNodeId(id)
    const node = this._nodesById.get(id)
    if (node === undefined) {
      if (this._transport !== null) return this._transport.remoteNode(id)
      throw new HappenError('UNKNOWN_NODE', `No node with id '${id}' in this runtime`)
    }
    return node
  }

  /**
   * Resolves once the transport is connected and every node created so far is reachable from
   * other processes (NATS); at once for the memory transport.
   */
  ready() {
    return this._transport === null ? Promise.resolve() : this._transport.flush()
  }

  /** The causal tree of an event id or correlation id, or null when the history holds neither. */
  trace(id) {
    if (typeof id !== 'string' || id.length === 0) throw invalidArg('id', 'a non-empty event or correlation id string', id)
    this._flushJournal()
    if (this._transport !== null) this._transport.flushSteps()
    const json = guard(() => native.trace(this._core, id))
    return json == null ? null : treeFromWire(json)
  }

  async shutdown() {
    if (this._closed) return
    if (this._transport !== null) await this._transport.close()
    this._flushJournal()
    for (const node of this._nodesById.values()) this._dispose(node)
    // The core stays until the runtime is collected, so trace() still reads the history.
    this._closed = true
  }

  _assertOpen(what) {
    if (this._closed) throw new HappenError('SHUTDOWN', `Cannot ${what}(): this happen runtime has been shut down`)
  }

  _assertLive(node, what) {
    this._assertOpen(what)
    if (node._index < 0) throw new HappenError('DISPOSED', `Cannot ${what}() on node '${node.id}': it has been disposed`)
  }

  _on(node, pattern, handler) {
    this._assertLive(node, 'on')
    checkPattern(pattern)
    checkHandler(handler)
    const predicate = typeof pattern === 'function' ? pattern : null
    // An anonymous handler is named after what it listens to, so traces stay readable.
    const name = handler.name || (predicate === null ? `on '${pattern}'` : `on ${stepName(predicate)}`)
    const id = guard(() => native.addHandler(this._core, node._index, predicate === null ? pattern : null, name))
    // `gen`: a handler added while a send is being delivered (maybe reusing a removed
    // handler's id) does not run for that send (robustness, issue 3).
    const gen = ++this._handlerGen
    // A predicate handler's step is recorded when its predicate lets it run (the core cannot
    // tell beforehand).
    const stepId = predicate === null ? -1 : this._stepId(name)
    this._handlers[id] = { fn: handler, predicate, name, gen, stepId }
    // The remover knows its handler by (id, gen), not by holding it: a remover the program
    // keeps must not keep the handler (and all it closes over) alive after remove(), dispose()
    // or shutdown() (issue 3).
    return () => {
      // Removing twice, or after the node is gone, is harmless.
      const current = this._handlers[id]
      if (current === undefined || current.gen !== gen) return
      this._handlers[id] = undefined
      trimTail(this._handlers) // issue 3: tables shrink back as the core's do
      guard(() => native.removeHandler(this._core, id))
    }
  }

  _dispose(node) {
    if (node._index < 0) return
    this._assertOpen('dispose')
    const released = guard(() => native.disposeNode(this._core, node._index))
    for (const id of released) this._handlers[id] = undefined
    this._nodesByIndex[node._index] = undefined
    trimTail(this._handlers) // issue 3: tables shrink back as the core's do
    trimTail(this._nodesByIndex)
    this._nodesById.delete(node.id)
    node._index = -1
    if (this._transport !== null) this._transport.nodeDisposed(node)
  }

  /** Turns a send target into the nodes it names; `keyed` when results come back keyed by node id. */
  _resolveTargets(target) {
    this._assertOpen('send')
    if (target instanceof Node) return { nodes: [this._own(target, 'target')], keyed: false }
    if (typeof target === 'string') {
      if (target.length === 0) throw invalidArg('target', 'a node, a node id, a NodeArray or an array of nodes', target)
      let node = this._nodesById.get(target)
      if (node === undefined && this._transport !== null) node = this._transport.remoteNode(target)
      if (node === undefined) throw new HappenError('UNKNOWN_NODE', `No node with id '${target}' in this runtime`)
      return { nodes: [node], keyed: false }
    }
    if (target instanceof NodeArray) return { nodes: target.nodes.map((n) => this._own(n, 'target')), keyed: true }
    if (Array.isArray(target)) {
      if (target.length === 0) throw invalidArg('target', 'a non-empty array of nodes', target)
      const seen = new Set()
      // Array.from, not map: a hole in a sparse array is checked as undefined (issue 3).
      const nodes = Array.from(target, (n, i) => {
        if (!(n instanceof Node)) throw invalidArg(`target[${i}]`, 'a node', n)
        if (seen.has(n.id)) throw invalidArg(`target[${i}]`, `a node not already in the array (duplicate '${n.id}')`, n)
        seen.add(n.id)
        return this._own(n, `target[${i}]`)
      })
      return { nodes, keyed: true }
    }
    throw invalidArg('target', 'a node, a node id, a NodeArray or an array of nodes', target)
  }

  _own(node, name) {
    if (node._runtime !== this) throw invalidArg(name, 'a node of the same runtime as the sender', node)
    if (node._index < 0) throw new HappenError('DISPOSED', `Cannot send to node '${node.id}': it has been disposed`)
    return node
  }

  _send(origin, targets, keyed, input) {
    let result
    try {
      result = this._deliver(origin, targets, keyed, input)
    } catch (error) {
      // NATS: a payload JSON cannot carry, one too large, or a failed connection rejects the send.
      if (!(error instanceof HappenError) || !REJECTED_SENDS.has(error.code)) throw error
      const rejected = Promise.reject(error)
      // Awaiting it still rejects; a send nobody awaits (fire and forget) must not crash the
      // process with an unhandled rejection.
      rejected.catch(() => {})
      rejected.return = () => rejected
      rejected.trace = () => null
      return rejected
    }
    const promise = Promise.resolve(result)
    promise.return = (options) => result.return(options)
    promise.trace = () => result.trace()
    return promise
  }

  /**
   * One send: validate everything, let the core plan it (ids, causality, which handlers run),
   * then start every target's flow. Nothing is delivered when anything is refused.
   */
  _deliver(origin, targets, keyed, input, inbound) {
    this._assertOpen('send')
    if (origin !== null && origin._index < 0) throw new HappenError('DISPOSED', `Cannot send from node '${origin.id}': it has been disposed`)
    // A NodeArray may hold a node disposed since (robustness, issue 3).
    if (targets !== EVERY_NODE) checkLiveTargets(targets, 'send')
    const batch = Array.isArray(input)
    const sharedType = batch ? checkBatch(input, 'events') : (checkEvent(input, 'event'), input.type)
    const ownIds = batch && checkBatch.ownIds
    const current = flowStorage.getStore()
    const frame = current !== undefined && current.runtime === this && inbound === undefined ? current : null
    const sender = frame !== null ? frame.node : origin
    if (batch && input.length === 0) return this._emptyResult(targets, keyed)
    // NATS hook: a broadcast goes to the local nodes and those other processes announced;
    // remote targets need the events as JSON, made (and refused) before dispatch.
    const transport = this._transport
    let wireBody = null
    const everyone = targets === EVERY_NODE
    if (transport !== null) {
      if (everyone) targets = transport.everyone()
      if (targets.some((n) => n._remote === true)) wireBody = transport.encode(input)
    }

    const count = batch ? input.length : 1
    const targetCount = targets === EVERY_NODE ? -1 : targets.length
    const typesAt = INPUT_HEADER + Math.max(targetCount, 0)
    const outcomesAt = typesAt + (sharedType === null ? count : 0)
    if (this._syncDepth > 0) this._settleDurations()
    const outcomes = this._journalLength
    const io = this._reserve(outcomesAt + outcomes)
    io[0] = sender === null ? -1 : sender._index
    // NATS hook: an event a remote flow sends back here is caused by the branch this runtime
    // gave that remote node (so traces nest it there).
    io[1] = frame !== null ? frame.seq : inbound !== undefined ? inbound.causeSeq : -1
    io[2] = frame !== null ? frame.branch : inbound !== undefined ? inbound.causeBranch : -1
    io[3] = frame === null ? -1 : frame.correlationSeq
    io[4] = targetCount
    io[5] = sharedType === null ? -1 : this._typeId(sharedType)
    io[6] = count
    io[7] = outcomes / 3
    for (let i = 0; i < targetCount; i++) io[INPUT_HEADER + i] = targets[i]._index
    if (sharedType === null) for (let i = 0; i < count; i++) io[typesAt + i] = this._typeId(input[i].type)
    for (let i = 0; i < outcomes; i++) io[outcomesAt + i] = this._journal[i]
    this._journalLength = 0
    this._journalResets++

    const first = batch ? input[0] : input
    // NATS hook: an event from another process keeps its causation and correlation ids, and
    // (dispatchInbound) its own id in this runtime's traces.
    const ids = inbound === undefined ? first : inbound.causal
    const explicitIds = ids.causationId != null || ids.correlationId != null
    let length
    try {
      length = inbound !== undefined
        ? native.dispatchInbound(this._core, io, inbound.causeSeq > 0 ? undefined : ids.causationId ?? undefined, ids.correlationId ?? undefined, inbound.causal.id)
        : explicitIds
        ? native.dispatchWithIds(this._core, io, ids.causationId ?? undefined, ids.correlationId ?? undefined)
        : native.dispatch(this._core, io)
    } catch (error) {
      throw fromNative(error)
    }
    let plan = this._io
    if (length < 0) {
      length = -length
      plan = this._reserve(length)
      guard(() => native.takePlan(this._core, plan))
    }

    const seq = plan[0]
    const firstBranch = plan[1]
    const correlationSeq = plan[3]
    const planned = plan[4]
    const id = this._prefix + seq
    const senderId = sender === null ? null : sender.id
    // Every target of a fan-out sees this one causal context: frozen, so no node's writes reach
    // another (each target gets its own event object around it, cheaper than freezing that).
    // NATS hook: an event from another process comes with its causal context.
    const causal = inbound !== undefined ? inbound.causal : Object.freeze({
      id,
      sender: senderId,
      causationId: first.causationId ?? (frame === null ? null : frame.causal.id),
      // The core chose the correlation; one that is not one of our ids it names on request.
      // A batch's first event's own ids are its own (the core keeps them as its override).
      correlationId:
        batch && explicitIds ? first.correlationId ?? guard(() => native.eventCorrelationId(this._core, seq))
        : correlationSeq === seq ? id
        : correlationSeq > 0 ? this._prefix + correlationSeq
        : first.correlationId ?? guard(() => native.eventCorrelationId(this._core, seq)),
      path: frame === null ? (sender === null ? NO_PATH : sender._rootPath) : Object.freeze([...frame.causal.path, senderId]),
      timestamp: plan[2],
    })

    // Read the whole plan before any handler runs: a handler that sends reuses `io`.
    const nodes = new Array(planned)
    const handlers = new Array(planned)
    for (let slot = 0, at = PLAN_HEADER; slot < planned; slot++) {
      nodes[slot] = this._nodesByIndex[plan[at]]
      const n = plan[at + 1]
      handlers[slot] = n === 0 ? null : n === 1 ? plan[at + 2] : Array.from(plan.subarray(at + 2, at + 2 + n))
      at += 2 + n
    }

    let info = null
    if (batch && inbound !== undefined) info = inbound.batch
    else if (batch) {
      info = new BatchInfo(this, seq, input, causal, frame === null ? null : frame.causal)
      for (let i = 1; ownIds && i < count; i++) {
        const { causationId, correlationId } = input[i]
        if (causationId != null || correlationId != null) {
          guard(() => native.setEventIds(this._core, seq + i, causationId ?? undefined, correlationId ?? undefined))
        }
      }
    }
    const eventIds = batch ? () => Array.from({ length: count }, (_, i) => this._prefix + (seq + i)) : null
    const result = new SendResult(this, nodes, keyed, id, eventIds)
    result._firstBranch = firstBranch
    result._pending = planned
    const startedAt = plan[5] + CLOCK_OFFSET
    const eventType = input.type
    const payload = input.payload
    // What errors and messages call the flow's event: a mixed batch lists its types.
    const type = !batch ? input.type : sharedType ?? [...new Set(input.map((e) => e.type))].join(', ')
    if (debug.enabled) debug.logSend(senderId, type, id, nodes, count)
    const correlation = correlationSeq > 0 ? correlationSeq : -1
    const startFlows = (syncStart) => {
      const outermost = this._syncDepth++ === 0
      if (outermost) this._syncStart = syncStart
      let remote = null
      let flowStart = syncStart
      let mark = -1
      try {
        for (let slot = 0; slot < planned; slot++) {
          if (mark >= 0) flowStart = this._settleSince(mark, flowStart)
          mark = this._journalMark()
          const node = nodes[slot]
          const flow = new FlowFrame(this, node, firstBranch + slot, seq, causal, correlation, type)
          flow.startedAt = flowStart
          // NATS hook: a flow serving another runtime knows that runtime's branch for it.
          if (inbound !== undefined) flow.origin = inbound.origins[slot]
          if (node._remote === true) {
            // NATS hook: a node of another process; the transport sends once for all of them.
            ;(remote || (remote = [])).push({ slot, frame: flow })
            continue
          }
          if (handlers[slot] === null) {
            result._unmatched(slot, flow)
            continue
          }
          if (batch) result._start(slot, flow, handlers[slot], input.slice(), new BatchContext(info, node), info)
          else result._start(slot, flow, handlers[slot], { type: eventType, payload, context: { causal } }, { causal, node }, null)
        }
      } finally {
        if (mark >= 0) this._settleSince(mark, flowStart)
        this._syncDepth--
        if (outermost) this._settleDurations()
      }
      if (remote !== null) transport.start(result, remote, wireBody, causal, info, everyone)
    }
    // robustness (issue 3): past MAX_SYNC_DEPTH sends nested synchronously (handlers sending
    // in a cycle), the flows start on a fresh stack instead of overflowing this one.
    if (this._syncDepth >= MAX_SYNC_DEPTH) setImmediate(() => startFlows(performance.now()))
    else startFlows(startedAt)
    return result
  }

  _emptyResult(targets, keyed) {
    return new SendResult(this, targets, keyed, null, [])
  }

  _reserve(length) {
    if (this._io.length < length) {
      let size = this._io.length
      while (size < length) size *= 2
      this._io = new Float64Array(size)
    }
    return this._io
  }

  _typeId(type) {
    let id = this._typeIds.get(type)
    if (id === undefined) {
      id = native.internType(this._core, type)
      this._typeIds.set(type, id)
    }
    return id
  }

  _recordStep(frame, fn, stepsSoFar) {
    if (stepsSoFar >= MAX_FLOW_STEPS) {
      throw new HappenError(
        'FLOW_TOO_LONG',
        `The flow in node '${frame.node.id}' ran more than ${MAX_FLOW_STEPS} steps for event '${frame.type}'`,
      )
    }
    this._log(frame.branch, STEP, this._stepId(stepName(fn)))
  }

  /** Records that a predicate handler runs in this branch. */
  _recordHandlerStep(frame, entry) {
    this._log(frame.branch, STEP, entry.stepId)
  }

  _stepId(name) {
    let id = this._stepIds.get(name)
    if (id === undefined) {
      id = guard(() => native.internStep(this._core, name))
      this._stepIds.set(name, id)
    }
    return id
  }

  _recordOutcome(branch, code, startedAt) {
    this._log(branch, code, this._syncDepth > 0 ? NaN : performance.now() - startedAt)
  }

  _log(branch, code, value) {
    let n = this._journalLength
    if (n === JOURNAL_SIZE) {
      this._flushJournal()
      n = 0
    }
    const journal = this._journal
    journal[n] = branch
    journal[n + 1] = code
    journal[n + 2] = value
    this._journalLength = n + 3
  }

  /** Where the journal ends now, valid across its emptyings. */
  _journalMark() {
    return this._journalResets * JOURNAL_SIZE + this._journalLength
  }

  /**
   * Gives the flows that finished at once since `mark` (one target's) their own duration,
   * from `startedAt` to now; returns now, the next target's start (or `startedAt` when no flow
   * finished, saving a clock read).
   */
  _settleSince(mark, startedAt) {
    const journal = this._journal
    const from = Math.floor(mark / JOURNAL_SIZE) === this._journalResets ? mark % JOURNAL_SIZE : 0
    let now = -1
    for (let i = from + 2; i < this._journalLength; i += 3) {
      if (journal[i] !== journal[i]) {
        if (now < 0) now = performance.now()
        journal[i] = now - startedAt
      }
    }
    return now < 0 ? startedAt : now
  }

  /** Gives any flow still without a duration one: up to now. */
  _settleDurations() {
    const journal = this._journal
    let elapsed = -1
    for (let i = 2; i < this._journalLength; i += 3) {
      if (journal[i] !== journal[i]) {
        if (elapsed < 0) elapsed = performance.now() - this._syncStart
        journal[i] = elapsed
      }
    }
  }

  _recordFailure(branch, startedAt, message) {
    guard(() => native.failBranch(this._core, branch, performance.now() - startedAt, message))
  }

  _flushJournal() {
    if (this._journalLength === 0) return
    this._settleDurations()
    const count = this._journalLength / 3
    this._journalLength = 0
    this._journalResets++
    guard(() => native.finishBranches(this._core, this._journal, count))
  }
}

function createNodeArray(nodes) {
  if (nodes instanceof NodeArray) return nodes
  if (!Array.isArray(nodes)) throw invalidArg('nodes', 'a non-empty array of nodes', nodes)
  if (nodes.length === 0) throw invalidArg('nodes', 'a non-empty array of nodes', nodes)
  const ids = new Set()
  // An indexed loop, not forEach: a hole in a sparse array is refused too (issue 3).
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]
    if (!(node instanceof Node)) throw invalidArg(`nodes[${i}]`, 'a node made by createNode()', node)
    if (node._runtime !== nodes[0]._runtime) throw invalidArg(`nodes[${i}]`, 'a node of the same runtime as nodes[0]', node)
    if (ids.has(node.id)) throw invalidArg(`nodes[${i}]`, `a node whose id is distinct ('${node.id}' appears twice)`, node)
    ids.add(node.id)
  }
  checkLiveMembers(nodes) // robustness (issue 3): no disposed node, no shut-down runtime
  return new NodeArray(nodes)
}

function initializeHappen(config) {
  return new Runtime(config)
}

module.exports = { initializeHappen, createNodeArray, Runtime, Node, NodeArray, HappenError }
