'use strict'

const native = require('./native')
const { HappenError, NEXT_STEPS, invalidArg, fromNative, shutdownError } = require('./errors')
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
const { createTransport } = require('./transport')
const { AsyncLocalStorage, AsyncResource } = require('node:async_hooks')
const { SendResult, Flow, BatchContext, flowStorage, runFlow, stepName, performance } = require('./delivery')
const { createTracing } = require('./tracing')
const { createMetrics } = require('./metrics')

const EVERY_NODE = null
/** The path of a root event sent from outside any node; root paths are shared and frozen. */
const NO_PATH = Object.freeze([])
/**
 * Errors a transport's encode() threw: they reject the send's promise rather than throw from
 * send(), since the send was valid and only where its targets live refused it.
 */
const refusedSends = new WeakSet()
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
 * How many sends may nest synchronously (`_syncDepth`: a handler sending
 * to a node whose handler sends...) before the inner flows start on a fresh stack
 * (setImmediate), so a cycle of sends cannot overflow the stack; about 1.5 KB of stack a level.
 */
const MAX_SYNC_DEPTH = 64
/**
 * Whether AsyncLocalStorage runs on async context frames (Node 24's default): there entering
 * a store copies the current frame (a Map), so a send avoids entering one just to restore.
 */
const CONTEXT_FRAMES = /AsyncContextFrame/.test(AsyncLocalStorage.prototype.enterWith.toString())

/**
 * Starts a flow in its own store. `scope` (context frames only) holds the caller's frame: each
 * flow enters from it and leaves it current again, so a flow's frame is a copy of the caller's
 * rather than of the previous flow's (which would copy one entry more), and the caller's is
 * current again after the last without a copy. Without context frames, `scope` is null and
 * the caller's store is entered again once the send has started its flows.
 */
function startFlow(scope, flow) {
  if (scope === null) enterFlow.call(flow)
  // The flow is the call's receiver (its handler is its first step), so the scope is entered
  // without an array of arguments per flow.
  else scope.runInAsyncScope(enterFlow, flow)
}

function enterFlow() {
  flowStorage.enterWith(this)
  runFlow(this, this.handler.fn)
}

/** Checks a send's event or batch (what _deliver checks first); throws naming what is wrong. */
function checkInput(input) {
  if (Array.isArray(input)) checkBatch(input, 'events')
  else checkEvent(input, 'event')
}

/**
 * A send's scope, opened at its first local flow (a send whose targets all live elsewhere
 * opens none); null without context frames. It is destroyed once the flows have started
 * (requireManualDestroy), so async_hooks destroy hooks (OpenTelemetry's context manager has
 * one) see it at once rather than through a GC callback per send.
 */
function sendScope(scope) {
  return scope !== null || !CONTEXT_FRAMES ? scope : new AsyncResource('happen.send', SCOPE_OPTIONS)
}

const SCOPE_OPTIONS = { requireManualDestroy: true }

/** Runs a call into the core, turning its errors into happen's. */
function guard(call) {
  try {
    return call()
  } catch (error) {
    throw fromNative(error)
  }
}

/** A target runPlanned ran for another thread: its end goes to that thread; its flow's sends carry no origin. */
class PlannedTarget {
  constructor(onTarget, index) {
    this.onTarget = onTarget
    this.index = index
  }

  targetDone() {
    this.onTarget(this.index)
  }

  originOf() {
    return undefined
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
      correlationId =
        event.causationId != null
          ? (guard(() => native.eventCorrelationId(runtime._core, seq)) ?? id)
          : cause === null
            ? id
            : cause.correlationId
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
    let resolved
    try {
      resolved = runtime._resolveTargets(targetOrEvent)
    } catch (error) {
      // The event is checked before the target: `send('x', { id: 1 })` names the missing type.
      if (!runtime._closed) checkInput(events)
      throw error
    }
    return runtime._send(this, resolved.nodes, resolved.keyed, events)
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
/** A local node runs its handlers here; a handle (RemoteNode) names the transport that reaches it. */
Object.defineProperty(Node.prototype, '_transport', { value: null })

/** A node that lives elsewhere, reached through its transport: a handle for send(), createNodeArray() and process(). */
class RemoteNode extends Node {
  constructor(runtime, id, index, transport) {
    super(runtime, id, index)
    Object.defineProperty(this, '_transport', { value: transport })
  }

  on() {
    throw new HappenError(
      'REMOTE_NODE',
      `Cannot on() node '${this.id}': it lives in ${this._transport.place}; register its handlers there`,
    )
  }

  dispose() {
    throw new HappenError(
      'REMOTE_NODE',
      `Cannot dispose() node '${this.id}': it lives in ${this._transport.place}; dispose it there`,
    )
  }

  toJSON() {
    return { id: this.id, remote: true }
  }
}
Object.defineProperty(RemoteNode.prototype, '_remote', { value: true })

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
    // A node that lives elsewhere has its handlers registered there.
    const removers = this.nodes.filter((node) => node._transport === null).map((node) => node.on(pattern, handler))
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

/** What a transport sees of its runtime (the `host` of lib/transport.js). */
class TransportHost {
  constructor(runtime, transport) {
    this._runtime = runtime
    this._transport = transport
    this.prefix = runtime._prefix
  }

  get closed() {
    return this._runtime._closed
  }

  localNode(id) {
    return this._runtime._nodesById.get(id)
  }

  localIds() {
    return this._runtime._nodesById.keys()
  }

  createHandle(id) {
    return this.handleAt(
      guard(() => native.createRemoteNode(this._runtime._core, id)),
      id,
    )
  }

  dropHandle(node) {
    if (node._index < 0) return
    const runtime = this._runtime
    try {
      native.disposeNode(runtime._core, node._index)
    } catch {}
    runtime._nodesByIndex[node._index] = undefined
    trimTail(runtime._nodesByIndex)
    node._index = -1
  }

  receive(message) {
    return this._runtime._receive(message)
  }

  /** The core this runtime uses, and its place there (0: the core is its own). */
  get core() {
    return this._runtime._core
  }

  get place() {
    return this._runtime._place
  }

  /** A handle for a node the (shared) core already holds at `index`, whose handlers run elsewhere. */
  handleAt(index, id) {
    const runtime = this._runtime
    const node = new RemoteNode(runtime, id, index, this._transport)
    runtime._nodesByIndex[index] = node
    return node
  }

  /** Forgets a handle made by handleAt (its node has left the core); sends to it say DISPOSED. */
  releaseHandle(node) {
    if (node._index < 0) return
    const runtime = this._runtime
    if (runtime._nodesByIndex[node._index] === node) {
      runtime._nodesByIndex[node._index] = undefined
      trimTail(runtime._nodesByIndex)
    }
    node._index = -1
  }

  /**
   * Runs flows the shared core already planned on another thread (no new dispatch: the
   * branches exist): message is { nodes (local, by target), branches, handlers (as planned),
   * input, causal, batchCause (a batch: the causal context of the flow that sent it, or null), seq,
   * correlation, type, startedAt (performance.now() of this thread), onTarget(i) }. Returns
   * one result per target (target i is slot 0 of results[i]).
   */
  runPlanned(message) {
    return this._runtime._runPlanned(message)
  }

  flushJournal() {
    this._runtime._flushJournal()
  }

  /** The handle of the id prefix `<runtimeId>-` of another runtime's events (receive's `aliasPrefix`). */
  aliasPrefix(runtimeId) {
    return guard(() => native.internAliasPrefix(this._runtime._core, runtimeId))
  }

  /** The steps of `count` consecutive branches from `firstBranch`: a line each (see lib/transport.js). */
  stepsOfBranches(firstBranch, count) {
    return guard(() => native.branchStepsJson(this._runtime._core, firstBranch, count))
  }

  addSteps(json) {
    guard(() => native.addRemoteSteps(this._runtime._core, json))
  }
}

class Runtime {
  /**
   * `shared`: { core, place } to join a core another runtime of this process made (and keeps),
   * as the runtime of `place`; its nodes run their handlers in this runtime.
   */
  constructor(config, shared) {
    const { historySize, transport, tracing, metrics } = checkConfig(config)
    this._core = shared === undefined ? native.createCore(historySize) : shared.core
    this._place = shared === undefined ? 0 : shared.place
    this._prefix = `${native.idPrefix(this._core)}-`
    if (shared === undefined) releaseWhenCollected.register(this, this._core, this)
    /** Plan buffers by depth of synchronously nested sends (see _planBuffer). */
    this._plans = []
    this._journal = new Float64Array(JOURNAL_SIZE)
    // `_io` carries a send's inputs to the core and its plan back; it and the journal are bound
    // to the core once, so calls pass no arrays.
    this._io = new Float64Array(1024)
    native.bindBuffers(this._core, this._io, this._journal)
    this._journalLength = 0
    /** How many sends are starting their flows on the stack right now. */
    this._syncDepth = 0
    /**
     * The latest clock reading while a send starts its flows: the send's start, then each
     * synchronously finished flow's end, which is where the next flow starts. So one reading
     * per finished flow gives every branch its own duration.
     */
    this._clockAt = 0
    this._handlers = []
    this._nodesByIndex = []
    this._nodesById = new Map()
    this._typeIds = new Map()
    this._lastType = null
    this._lastTypeId = -1
    // By type id: the last mixed batch that listed the type (see _deliver).
    this._typeStamps = []
    this._typeStamp = 0
    this._stepIds = new Map()
    this._closed = false
    /** tracing: OpenTelemetry spans for flows (lib/tracing), null when off or the API is not installed. */
    this._tracing = createTracing(tracing)
    /** metrics: OpenTelemetry metrics of sends and flows (lib/metrics), null when off or the API is not installed. */
    this._metrics = createMetrics(metrics)
    // A counter stamped on each handler so a send runs only handlers
    // registered before it.
    this._handlerGen = 0
    // The transports that reach nodes living elsewhere (lib/transport.js); `_transport` is the
    // one the config names, null for the in-memory runtime.
    this._transports = []
    this._transport = createTransport(transport, historySize)
    // `await initializeHappen({ transport })` waits until the transport is ready and rejects
    // promptly when it cannot be (say, CONNECTION_FAILED); the thenable goes once settled, so
    // the runtime itself is what the await gives. Always an own property, set to undefined
    // rather than deleted: a deleted property turns the runtime's properties into a dictionary,
    // and every send's reads of them into hash lookups.
    Object.defineProperty(this, 'then', { configurable: true, writable: true, value: undefined })
    if (this._transport !== null) {
      this._addTransport(this._transport)
      this.then = (onFulfilled, onRejected) =>
        this.ready()
          .then(
            () => {
              this.then = undefined
              return this
            },
            (error) => {
              this.then = undefined
              throw error
            },
          )
          .then(onFulfilled, onRejected)
    }
    // Usable unbound, as the top-level exports and destructuring expect.
    for (const name of ['createNode', 'createNodeArray', 'node', 'trace', 'shutdown', 'ready'])
      this[name] = this[name].bind(this)
  }

  createNode(id, options) {
    this._assertOpen('createNode')
    checkNodeId(id)
    checkNodeOptions(options)
    const transports = this._transports
    for (let i = 0; i < transports.length; i++) transports[i].beforeCreate(id)
    const index = guard(() =>
      this._place === 0 ? native.createNode(this._core, id) : native.createNodeIn(this._core, id, this._place),
    )
    const node = new Node(this, id, index)
    this._nodesByIndex[index] = node
    this._nodesById.set(id, node)
    for (let i = 0; i < transports.length; i++) transports[i].nodeCreated(node)
    return node
  }

  createNodeArray(nodes) {
    return createNodeArray(nodes)
  }

  /** The node with this id: a local node is itself its handle; else a transport's handle of it. */
  node(id) {
    this._assertOpen('node')
    checkNodeId(id)
    const node = this._find(id)
    if (node === undefined) throw this._unknownNode(id)
    return node
  }

  /** UNKNOWN_NODE for `id`, with what to do: a worker still loading may be about to create it. */
  _unknownNode(id) {
    const loading = this._workersLoading()
    const next =
      loading === 0
        ? NEXT_STEPS.UNKNOWN_NODE
        : `${loading === 1 ? 'a worker started with worker() is' : `${loading} workers started with worker() are`} still loading: await worker() before addressing its nodes`
    return new HappenError('UNKNOWN_NODE', `No node with id '${id}' in this runtime; ${next}`)
  }

  /** How many worker() calls of this runtime are still loading their module (lib/transports/workers counts them). */
  _workersLoading() {
    return 0
  }

  /** The local node of this id, else the handle a transport knows it by. */
  _find(id) {
    const node = this._nodesById.get(id)
    if (node !== undefined) return node
    const transports = this._transports
    for (let i = 0; i < transports.length; i++) {
      const handle = transports[i].resolve(id)
      if (handle !== undefined) return handle
    }
    return undefined
  }

  /**
   * Resolves once every transport is ready and every node created so far is reachable from
   * where they reach (other processes, threads); at once for the in-memory runtime.
   */
  ready() {
    const transports = this._transports
    if (transports.length === 0) return Promise.resolve()
    if (transports.length === 1) return transports[0].ready()
    return Promise.all(transports.map((t) => t.ready())).then(() => {})
  }

  /** Adds a transport: from now on the nodes it reaches are addressable from this runtime. */
  _addTransport(transport) {
    this._transports.push(transport)
    transport.attach(new TransportHost(this, transport))
  }

  /** The causal tree of an event id or correlation id, or null when the history holds neither. */
  trace(id) {
    if (typeof id !== 'string' || id.length === 0)
      throw invalidArg('id', 'a non-empty event or correlation id string', id)
    this._flushJournal()
    for (const transport of this._transports) transport.flushSteps()
    const json = guard(() => native.trace(this._core, id))
    return json == null ? null : treeFromWire(json)
  }

  async shutdown() {
    if (this._closed) return
    for (const transport of this._transports) await transport.close()
    this._flushJournal()
    for (const node of this._nodesById.values()) this._dispose(node)
    // The core stays until the runtime is collected, so trace() still reads the history.
    this._closed = true
  }

  _assertOpen(what) {
    if (this._closed) throw shutdownError(what)
  }

  _assertLive(node, what) {
    this._assertOpen(what)
    if (node._index < 0)
      throw new HappenError(
        'DISPOSED',
        `Cannot ${what}() on node '${node.id}': it has been disposed; ${NEXT_STEPS.DISPOSED}`,
      )
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
    // handler's id) does not run for that send.
    const gen = ++this._handlerGen
    // A predicate handler's step is recorded when its predicate lets it run (the core cannot
    // tell beforehand).
    const stepId = predicate === null ? -1 : this._stepId(name)
    // `chain`: the further steps its flows ran, cached (see stepOf in lib/delivery.js).
    this._handlers[id] = { fn: handler, predicate, name, gen, stepId, chain: [] }
    // The remover knows its handler by (id, gen), not by holding it: a remover the program
    // keeps must not keep the handler (and all it closes over) alive after remove(), dispose()
    // or shutdown().
    return () => {
      // Removing twice, or after the node is gone, is harmless.
      const current = this._handlers[id]
      if (current === undefined || current.gen !== gen) return
      this._handlers[id] = undefined
      trimTail(this._handlers) // tables shrink back as the core's do
      guard(() => native.removeHandler(this._core, id))
    }
  }

  _dispose(node) {
    if (node._index < 0) return
    this._assertOpen('dispose')
    const released = guard(() => native.disposeNode(this._core, node._index))
    for (const id of released) this._handlers[id] = undefined
    this._nodesByIndex[node._index] = undefined
    trimTail(this._handlers) // tables shrink back as the core's do
    trimTail(this._nodesByIndex)
    this._nodesById.delete(node.id)
    node._index = -1
    for (const transport of this._transports) transport.nodeDisposed(node)
  }

  /** Turns a send target into the nodes it names; `keyed` when results come back keyed by node id. */
  _resolveTargets(target) {
    this._assertOpen('send')
    if (target instanceof Node) return { nodes: [this._own(target, 'target')], keyed: false }
    if (typeof target === 'string') {
      if (target.length === 0) throw invalidArg('target', 'a node, a node id, a NodeArray or an array of nodes', target)
      checkNodeId(target, 'target')
      const node = this._find(target)
      if (node === undefined) throw this._unknownNode(target)
      return { nodes: [node], keyed: false }
    }
    if (target instanceof NodeArray) return { nodes: target.nodes.map((n) => this._own(n, 'target')), keyed: true }
    if (Array.isArray(target)) {
      if (target.length === 0) throw invalidArg('target', 'a non-empty array of nodes', target)
      const seen = new Set()
      // Array.from, not map: a hole in a sparse array is checked as undefined.
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
    if (node._index < 0)
      throw new HappenError(
        'DISPOSED',
        `Cannot send to node '${node.id}': it has been disposed; ${NEXT_STEPS.DISPOSED}`,
      )
    return node
  }

  _send(origin, targets, keyed, input) {
    let result
    try {
      result = this._deliver(origin, targets, keyed, input)
    } catch (error) {
      // A transport refused the input (a payload it cannot carry, one too large, a failed
      // connection): the send rejects.
      if (error === null || typeof error !== 'object' || !refusedSends.has(error)) throw error
      const rejected = Promise.reject(error)
      // Awaiting it still rejects; a send nobody awaits (fire and forget) must not crash the
      // process with an unhandled rejection.
      rejected.catch(() => {})
      rejected.return = () => rejected
      rejected.trace = () => null
      return rejected
    }
    // A send a transport held back (its bound on what waits for the wire is reached) resolves
    // once admitted: a producer that awaits its sends goes at the pace its receivers take. (A
    // send whose flows start on a fresh stack, past MAX_SYNC_DEPTH, is not held yet: it does not wait.)
    const promise = result._admission === null ? Promise.resolve(result) : result._admission.promise
    promise.return = (options) => result.return(options)
    promise.trace = () => result.trace()
    return promise
  }

  /**
   * One send: validate everything, let the core plan it (ids, causality, which handlers run),
   * then start every target's flow. Nothing is delivered when anything is refused.
   */
  _deliver(origin, targets, keyed, input, inbound) {
    if (this._closed) this._assertOpen('send')
    if (origin !== null && origin._index < 0)
      throw new HappenError(
        'DISPOSED',
        `Cannot send from node '${origin.id}': it has been disposed; ${NEXT_STEPS.DISPOSED}`,
      )
    // A NodeArray may hold a node disposed since.
    if (targets !== EVERY_NODE) checkLiveTargets(targets, 'send')
    const batch = Array.isArray(input)
    const sharedType = batch ? checkBatch(input, 'events') : (checkEvent(input, 'event'), input.type)
    const ownIds = batch && checkBatch.ownIds
    const current = flowStorage.getStore()
    const frame = current !== undefined && current.runtime === this && inbound === undefined ? current : null
    const sender = frame !== null ? frame.node : origin
    if (batch && input.length === 0) return this._emptyResult(targets, keyed)
    // With transports, a broadcast goes to the local nodes and those the transports reach;
    // targets that live elsewhere need the input encoded (and maybe refused) before dispatch.
    let wires = null
    const everyone = targets === EVERY_NODE
    if (this._transports.length > 0) {
      if (everyone) targets = this._everyone()
      wires = this._encodeFor(targets, input)
    }

    const count = batch ? input.length : 1
    const targetCount = targets === EVERY_NODE ? -1 : targets.length
    const typesAt = INPUT_HEADER + Math.max(targetCount, 0)
    let io = this._exchange(typesAt + (sharedType === null ? count : 0))
    io[0] = sender === null ? -1 : sender._index
    // An event from elsewhere that a flow there sent while serving one of our branches is
    // caused by that branch (so traces nest it there).
    io[1] = frame !== null ? frame.seq : inbound !== undefined ? inbound.causeSeq : -1
    io[2] = frame !== null ? frame.branch : inbound !== undefined ? inbound.causeBranch : -1
    io[3] = frame === null ? -1 : frame.correlationSeq
    io[4] = targetCount
    io[5] = sharedType === null ? -1 : this._typeId(sharedType)
    io[6] = count
    // The flows finished since the last call, which the core reads from the journal first.
    io[7] = this._journalLength / 3
    for (let i = 0; i < targetCount; i++) io[INPUT_HEADER + i] = targets[i]._index
    // A mixed batch: each event's type id, and its distinct types in the order first seen (what
    // errors and messages call the flow's event). Events of one type usually come in runs, so
    // each run's type is looked up once; a type id stamped with this send was listed already.
    let mixedTypes = null
    if (sharedType === null) {
      const stamp = ++this._typeStamp
      const stamps = this._typeStamps
      mixedTypes = []
      let runType = null
      let runTypeId = -1
      for (let i = 0; i < count; i++) {
        const type = input[i].type
        if (type !== runType) {
          runType = type
          runTypeId = this._typeId(type)
          if (stamps[runTypeId] !== stamp) {
            stamps[runTypeId] = stamp
            mixedTypes.push(type)
          }
        }
        io[typesAt + i] = runTypeId
      }
    }
    this._journalLength = 0

    const first = batch ? input[0] : input
    // An event from elsewhere keeps its causation and correlation ids, and (dispatchInbound)
    // its own id in this runtime's traces.
    const ids = inbound === undefined ? first : inbound.causal
    const explicitIds = ids.causationId != null || ids.correlationId != null
    let length
    try {
      length =
        inbound !== undefined
          ? this._dispatchInbound(inbound)
          : explicitIds
            ? native.dispatchWithIds(this._core, ids.causationId ?? undefined, ids.correlationId ?? undefined)
            : ((native.args[0] = this._core), native.dispatch())
    } catch (error) {
      throw fromNative(error)
    }
    if (length < 0) {
      length = -length
      io = this._exchange(length)
      guard(() => native.takePlan(this._core))
    }
    // Each level of synchronously nested sends keeps its plan in its own buffer, so the plan
    // stays readable while its handlers send.
    const depth = this._syncDepth
    const plan = this._planBuffer(depth, length)
    for (let i = 0; i < length; i++) plan[i] = io[i]

    const seq = plan[0]
    const correlationSeq = plan[3]
    const planned = plan[4]
    const id = this._prefix + seq
    const senderId = sender === null ? null : sender.id
    // Every target of a fan-out sees this one causal context: frozen, so no node's writes reach
    // another (each target gets its own event object around it, cheaper than freezing that).
    // An event from elsewhere comes with its causal context.
    const causal =
      inbound !== undefined
        ? inbound.causal
        : Object.freeze({
            id,
            sender: senderId,
            causationId: first.causationId ?? (frame === null ? null : frame.causal.id),
            // The core chose the correlation; one that is not one of our ids it names on request.
            // A batch's first event's own ids are its own (the core keeps them as its override).
            correlationId:
              batch && explicitIds
                ? (first.correlationId ?? guard(() => native.eventCorrelationId(this._core, seq)))
                : correlationSeq === seq
                  ? id
                  : correlationSeq > 0
                    ? this._prefix + correlationSeq
                    : (first.correlationId ?? guard(() => native.eventCorrelationId(this._core, seq))),
            path:
              frame === null
                ? sender === null
                  ? NO_PATH
                  : sender._rootPath
                : Object.freeze([...frame.causal.path, senderId]),
            timestamp: plan[2],
          })

    // The core plans explicit targets in their order, one slot each.
    let nodes = targets
    if (targetCount < 0) {
      nodes = new Array(planned)
      for (let slot = 0, at = PLAN_HEADER; slot < planned; slot++) {
        nodes[slot] = this._nodesByIndex[plan[at]]
        at += 2 + plan[at + 1]
      }
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
    const result = new SendResult(this, nodes, keyed, id, null, planned)
    if (batch)
      result._ids = count === 1 ? null : () => Array.from({ length: count }, (_, i) => this._prefix + (seq + i))
    result._seq = seq
    result._firstBranch = plan[1]
    result._causal = causal
    result._correlation = correlationSeq > 0 ? correlationSeq : -1
    result._startedAt = plan[5] + CLOCK_OFFSET
    // What errors and messages call the flow's event: a mixed batch lists its types.
    result._type = !batch ? input.type : (sharedType ?? mixedTypes.join(', '))
    if (debug.enabled) debug.logSend(senderId, result._type, id, nodes, count)
    // Flows serving an event from elsewhere answer their sender there, and carry what it
    // needs to nest the events they send.
    if (inbound !== undefined) result._served = inbound.served
    if (this._tracing !== null) this._tracing.sent(result, frame, inbound) // tracing
    if (this._metrics !== null) this._metrics.sent(result, input, batch, inbound) // metrics
    const flowOrigin = frame === null ? undefined : frame.origin
    // Past MAX_SYNC_DEPTH sends nested synchronously (handlers sending in a cycle), the flows
    // start on a fresh stack instead of overflowing this one.
    if (depth >= MAX_SYNC_DEPTH) {
      const copy = plan.slice(0, length)
      setImmediate(() =>
        this._runPlan(result, copy, input, info, inbound, wires, flowOrigin, everyone, flowStorage.getStore()),
      )
    } else {
      this._runPlan(result, plan, input, info, inbound, wires, flowOrigin, everyone, current)
    }
    return result
  }

  /**
   * Starts every planned target's flow, then hands the targets that live elsewhere to their
   * transports. Each local flow runs in its own store, entered once. With context frames each
   * flow enters from the caller's frame (see startFlow), which is current again once it has
   * started; else the caller's store is entered again at the end (cheap there).
   */
  _runPlan(result, plan, input, info, inbound, wires, flowOrigin, everyone, prior) {
    let elsewhere
    if (CONTEXT_FRAMES) {
      elsewhere = this._startFlows(result, plan, input, info, inbound)
    } else {
      try {
        elsewhere = this._startFlows(result, plan, input, info, inbound)
      } finally {
        flowStorage.enterWith(prior)
      }
    }
    if (elsewhere !== null)
      this._startElsewhere(result, result._targets, elsewhere, wires, result._causal, info, flowOrigin, everyone)
  }

  /** The loop of _runPlan: starts the local flows; returns the slots that live elsewhere, or null. */
  _startFlows(result, plan, input, info, inbound) {
    const nodes = result._targets
    const planned = result._pending
    const batch = info !== null
    const causal = result._causal
    const handlers = this._handlers
    let elsewhere = null
    let scope = null
    this._syncDepth++
    this._clockAt = result._startedAt
    try {
      for (let slot = 0, at = PLAN_HEADER; slot < planned; slot++) {
        const node = nodes[slot]
        const n = plan[at + 1]
        const firstHandler = at + 2
        at = firstHandler + n
        if (node._transport !== null) {
          // Its transport starts all of this send's flows it reaches at once, below, with the
          // handlers the core planned there.
          ;(elsewhere || (elsewhere = [])).push(
            slot,
            n === 0 ? null : n === 1 ? plan[firstHandler] : Array.prototype.slice.call(plan, firstHandler, at),
          )
          continue
        }
        if (n === 0) {
          result._unmatched(slot)
          continue
        }
        const event = batch
          ? planned === 1
            ? input
            : input.slice()
          : { type: input.type, payload: input.payload, context: { causal } }
        if (n === 1) {
          const entry = handlers[plan[firstHandler]]
          if (!result._runnable(slot, entry, event)) {
            result._unmatched(slot)
            continue
          }
          const flow = new Flow(
            result,
            slot,
            node,
            event,
            batch ? new BatchContext(info, node) : { causal, node },
            entry,
            null,
          )
          scope = sendScope(scope)
          startFlow(scope, flow)
          continue
        }
        // Several handlers: choose every handler first and count their flows before
        // any runs, so a first flow that finishes at once cannot end the target early.
        const entries = []
        for (let i = 0; i < n; i++) {
          const entry = handlers[plan[firstHandler + i]]
          if (result._runnable(slot, entry, event)) entries.push(entry)
        }
        if (entries.length === 0) {
          result._unmatched(slot)
          continue
        }
        const group = entries.length > 1 ? { left: entries.length, value: undefined } : null
        for (let order = 0; order < entries.length; order++) {
          const context = batch ? new BatchContext(info, node) : { causal, node }
          const flow = new Flow(result, slot, node, event, context, entries[order], group)
          flow.order = order
          scope = sendScope(scope)
          startFlow(scope, flow)
        }
      }
    } finally {
      this._syncDepth--
      if (scope !== null) scope.emitDestroy()
    }
    return elsewhere
  }

  /** The buffer bound to the core for a send's inputs and plan, at least `length` long. */
  _exchange(length) {
    if (this._io.length >= length) return this._io
    let size = this._io.length
    while (size < length) size *= 2
    this._io = new Float64Array(size)
    guard(() => native.bindBuffers(this._core, this._io, this._journal))
    return this._io
  }

  /** The plan buffer of sends nested `depth` deep, at least `length` long. */
  _planBuffer(depth, length) {
    let buffer = this._plans[depth]
    if (buffer === undefined || buffer.length < length) {
      let size = buffer === undefined ? 1024 : buffer.length
      while (size < length) size *= 2
      buffer = this._plans[depth] = new Float64Array(size)
    }
    return buffer
  }

  /** Every node a broadcast reaches: the local ones and those the transports reach. */
  _everyone() {
    const nodes = [...this._nodesById.values()]
    for (const transport of this._transports) {
      const handles = transport.everyone()
      for (let i = 0; i < handles.length; i++) nodes.push(handles[i])
    }
    return nodes
  }

  /** The input as each transport that owns one of `targets` carries it, or null when all are local. */
  _encodeFor(targets, input) {
    let wires = null
    for (let i = 0; i < targets.length; i++) {
      const transport = targets[i]._transport
      if (transport === null || wires?.has(transport)) continue
      let wire
      try {
        wire = transport.encode(input)
      } catch (error) {
        if (error !== null && typeof error === 'object') refusedSends.add(error)
        throw error
      }
      ;(wires || (wires = new Map())).set(transport, wire)
    }
    return wires
  }

  /** Hands each transport the planned targets of one send that it owns, in one start() call. */
  _startElsewhere(result, nodes, slots, wires, causal, batch, origin, broadcast) {
    const firstBranch = result._firstBranch
    let transport = nodes[slots[0]]._transport
    let group = []
    const { _seq: seq, _correlation: correlation, _type: type, _startedAt: startedAt } = result
    const trace = result._trace === null ? null : this._tracing.carrierOf(result) // tracing
    const start = () =>
      transport.start({
        result,
        slots: group,
        wire: wires.get(transport),
        causal,
        batch,
        origin,
        broadcast,
        seq,
        correlation,
        type,
        startedAt,
        trace,
      })
    let rest = null
    // `slots`: slot, planned handlers, slot, planned handlers...
    for (let i = 0; i < slots.length; i += 2) {
      const slot = slots[i]
      const node = nodes[slot]
      const target = { slot, branch: firstBranch + slot, node, handlers: slots[i + 1] }
      if (node._transport === transport) group.push(target)
      else
        (rest || (rest = new Map())).has(node._transport)
          ? rest.get(node._transport).push(target)
          : rest.set(node._transport, [target])
    }
    start()
    if (rest !== null) for ([transport, group] of rest) start()
  }

  /** See TransportHost.runPlanned: each target is a send of its own to one node, already planned. */
  _runPlanned(message) {
    const { nodes, branches, handlers, input, causal, batchCause, seq, correlation, type, startedAt, onTarget } =
      message
    const info = Array.isArray(input) ? new BatchInfo(this, seq, input, causal, batchCause) : null
    const results = new Array(nodes.length)
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]
      const planned = handlers[i]
      const result = new SendResult(this, [node], false, causal.id, null, 1)
      result._seq = seq
      result._firstBranch = branches[i]
      result._causal = causal
      result._correlation = correlation
      result._startedAt = startedAt
      result._type = type
      result._served = new PlannedTarget(onTarget, i)
      if (this._tracing !== null) this._tracing.sent(result, null, message) // tracing
      if (this._metrics !== null) this._metrics.sent(result, input, info !== null, message) // metrics
      results[i] = result
      // A plan as the core writes it, for this one target.
      const plan = [seq, branches[i], causal.timestamp, correlation, 1, 0, node._index]
      if (planned === null) plan.push(0)
      else if (typeof planned === 'number') plan.push(1, planned)
      else plan.push(planned.length, ...planned)
      this._runPlan(result, plan, input, info, undefined, null, undefined, false, flowStorage.getStore())
    }
    return results
  }

  /**
   * The core's dispatch of an event from elsewhere, which keeps its id there as an alias. The
   * usual one (a root event there, or one a flow serving our branch sent) crosses as numbers.
   */
  _dispatchInbound(inbound) {
    const { id, causationId, correlationId } = inbound.causal
    const caused = inbound.causeSeq > 0
    if (inbound.aliasPrefix >= 0 && correlationId === id && (caused || causationId == null)) {
      const args = native.args
      args[0] = this._core
      args[1] = inbound.aliasPrefix
      args[2] = inbound.aliasSeq
      return native.dispatchInboundSeq()
    }
    return native.dispatchInbound(
      this._core,
      id,
      correlationId === id,
      caused ? undefined : (causationId ?? undefined),
      correlationId === id ? undefined : (correlationId ?? undefined),
    )
  }

  /** An event from elsewhere (a transport's one way in): planned and run like a local send. */
  _receive(message) {
    return this._deliver(message.sender, message.nodes, true, message.input, message)
  }

  _emptyResult(targets, keyed) {
    const result = new SendResult(this, targets, keyed, null, [], 0)
    result._values.fill(null)
    return result
  }

  _typeId(type) {
    // Sends come in runs of one type: the last one is checked before the table.
    if (type === this._lastType) return this._lastTypeId
    let id = this._typeIds.get(type)
    if (id === undefined) {
      id = native.internType(this._core, type)
      this._typeIds.set(type, id)
    }
    this._lastType = type
    this._lastTypeId = id
    return id
  }

  /** Records a flow's further step (its step name id); a flow past MAX_FLOW_STEPS fails instead. */
  _recordStep(flow, stepId) {
    if (flow.steps >= MAX_FLOW_STEPS) {
      throw new HappenError(
        'FLOW_TOO_LONG',
        `The flow in node '${flow.node.id}' ran more than ${MAX_FLOW_STEPS} steps for event '${flow.type}'; ${NEXT_STEPS.FLOW_TOO_LONG}`,
      )
    }
    this._log(flow.branch, STEP, stepId)
  }

  /** Records that a predicate handler runs in this branch. */
  _recordHandlerStep(branch, entry) {
    this._log(branch, STEP, entry.stepId)
  }

  _stepId(name) {
    let id = this._stepIds.get(name)
    if (id === undefined) {
      id = guard(() => native.internStep(this._core, name))
      this._stepIds.set(name, id)
    }
    return id
  }

  /** A flow's end: its duration is one clock reading, now, against its start. */
  _recordOutcome(branch, code, startedAt) {
    const now = performance.now()
    this._clockAt = now
    this._log(branch, code, now - startedAt)
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

  _recordFailure(branch, startedAt, message) {
    const now = performance.now()
    this._clockAt = now
    guard(() => native.failBranch(this._core, branch, now - startedAt, message))
  }

  _flushJournal() {
    if (this._journalLength === 0) return
    const count = this._journalLength / 3
    this._journalLength = 0
    guard(() => native.finishBranches(this._core, count))
  }
}

function createNodeArray(nodes) {
  if (nodes instanceof NodeArray) return nodes
  if (!Array.isArray(nodes)) throw invalidArg('nodes', 'a non-empty array of nodes', nodes)
  if (nodes.length === 0) throw invalidArg('nodes', 'a non-empty array of nodes', nodes)
  const ids = new Set()
  // An indexed loop, not forEach: a hole in a sparse array is refused too.
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]
    if (!(node instanceof Node)) throw invalidArg(`nodes[${i}]`, 'a node made by createNode()', node)
    if (node._runtime !== nodes[0]._runtime)
      throw invalidArg(`nodes[${i}]`, 'a node of the same runtime as nodes[0]', node)
    if (ids.has(node.id))
      throw invalidArg(`nodes[${i}]`, `a node whose id is distinct ('${node.id}' appears twice)`, node)
    ids.add(node.id)
  }
  checkLiveMembers(nodes) // no disposed node, no shut-down runtime
  return new NodeArray(nodes)
}

function initializeHappen(config) {
  return new Runtime(config)
}

module.exports = { initializeHappen, createNodeArray, Runtime, Node, RemoteNode, NodeArray, HappenError }
