'use strict'

// The transport seam: how a runtime reaches nodes whose handlers run somewhere else (another
// process, another thread), without its send path knowing which transport that is.
//
// What holds:
// - Every node the runtime can address is either local (its handlers run in this runtime) or
//   a *handle* owned by exactly one transport: a Node whose `_transport` is that transport.
//   Ids, causality, dispatch plans and the causal history stay the core's, for both kinds.
// - A send validates its input, asks every transport that owns one of its targets to encode the
//   input (`encode`), and only then lets the core plan it: a transport's refusal refuses the
//   whole send (it rejects) before anything is delivered anywhere.
// - One send calls `start(delivery)` at most once per transport, after the local targets'
//   flows have started, with every planned target that transport owns.
// - A remote target's branch stays running in the history until the transport settles it with
//   `delivery.result.settleTarget(slot, outcome)`; its outcome joins the send's result like a
//   local one (keyed by node id, failures isolated to their entry).
// - A transport may hold a send back (a bound on what it holds for the wire is reached): it
//   calls `result.hold()` in start(), then `result.admit()` once the send left, or settles its
//   targets and calls `result.refuse(error)` when it never will. `await send()` resolves once
//   every transport that held the send admitted it, and rejects with a refusal's error.
// - Events from elsewhere enter through one door, `host.receive(message)`: they are planned
//   by the core and run like a local send, and every served target's end is reported to the
//   transport (`message.served.targetDone(slot)`) so it can answer per node.
//
// A transport is an object with:
//   type                          its config name ("nats", ...)
//   attach(host)                  once, before anything else: `host` is the runtime's side (below)
//   resolve(id) -> handle|undefined   the handle of a node known to live elsewhere
//   everyone() -> handle[]        the nodes elsewhere that a broadcast reaches
//   beforeCreate(id)              a local node of this id is about to be created (may throw)
//   nodeCreated(node) / nodeDisposed(node)   a local node appeared / went away
//   encode(input) -> wire         the send's event or batch as this transport carries it;
//                                 throws (NOT_SERIALIZABLE, PAYLOAD_TOO_LARGE, ...) to refuse it
//   start(delivery)               runs the flows of this send's targets it owns; `delivery` is
//                                 { result, slots: [{ slot, branch, node }], wire, causal,
//                                   batch, origin, broadcast }: `causal` the send's causal
//                                 context, `batch` the batch's contexts (causalAt(i)) or null,
//                                 `origin` what the sending flow's own inbound message carried
//                                 (see receive) or undefined, `broadcast` true for broadcast(),
//                                 `seq` the (first) event's number in the core, `correlation` the
//                                 correlation's event number (-1: none of ours), `type` what
//                                 failures call the event, `startedAt` the send's start
//                                 (performance.now() of this thread), `trace` the W3C trace
//                                 context ({ traceparent, tracestate? }) the targets' flow
//                                 spans continue, or null when the send is not traced (a
//                                 transport carries it to where the flows run and gives it
//                                 back there as `message.trace`); each slot also
//                                 has the handler ids the core planned for it (`handlers`: an id,
//                                 an array, or null for none) — a transport sharing the core runs
//                                 exactly those
//   flushSteps()                  before a trace: steps recorded elsewhere reach the core
//   ready() -> Promise            connected, and every node created so far reachable
//   close() -> Promise            shutdown(): settle what waits, release everything
//   place                         words for where its nodes live ("another process"), for errors
//
// The runtime's side, `host`, given to attach():
//   prefix                        this runtime's event id prefix (ids are prefix + '-' + seq)
//   closed                        whether the runtime was shut down
//   localNode(id) / localIds()    the local node of an id / every local node's id
//   createHandle(id) -> handle    a node of this id that the transport owns (planned by the core
//                                 as a target without handlers here)
//   dropHandle(handle)            the handle leaves the core; sends to it say DISPOSED
//   receive(message) -> result    an event from elsewhere: message is { sender (a node or
//                                 null), nodes (local nodes), input, causal, causeSeq and
//                                 causeBranch (this runtime's flow that caused it, or -1),
//                                 aliasPrefix and aliasSeq (its id there is `<prefix>-<seq>`,
//                                 aliasPrefix from host.aliasPrefix(prefix); -1: see causal.id),
//                                 batch, served, trace (the W3C trace context delivery.trace
//                                 carried, or null) }; served.targetDone(slot) is called when a
//                                 target's flow ends, served.originOf(slot) gives what the sends
//                                 that flow makes carry as delivery.origin (opaque)
//   aliasPrefix(runtimeId) -> handle   the handle of another runtime's id prefix (receive)
//   flushJournal()                local flows' steps and outcomes reach the core now
//   stepsOfBranches(first, count) -> string   per branch of `count` consecutive ones from
//                                 `first` (a result's targets, or several results' in one call)
//                                 a line: the JSON array of step names its flow ran, or nothing
//                                 when they are the line before's
//   addSteps(json)                records steps that flows elsewhere ran on this runtime's branches
// For a transport whose nodes share this runtime's core (threads of one process):
//   core / place                  the core's handle and this runtime's place in it (0: its own)
//   handleAt(index, id) -> handle a handle for a node the core already holds, run elsewhere
//   releaseHandle(handle)         forgets such a handle (its node left the core)
//   runPlanned(message) -> results   runs flows the core planned on another thread (no new
//                                 dispatch): { nodes, branches, handlers, input, causal,
//                                 batchCause, seq, correlation, type, startedAt, trace, onTarget }
//
// A kind of transport is registered by its config type (registerTransport) with
// checkOptions(options), which throws a TypeError naming a bad field, and create(options,
// historySize).
//
// On a result (SendResult): settleTarget(slot, outcome) with outcome { ok, value | error,
// step, matched, recorded } (`recorded`: already in the shared core), outcome(slot) -> { ok, value | error, step } of a finished target,
// isDone(slot), targets (the nodes, by slot); hold() / admit() / refuse(error) (see above).

const { invalidArg } = require('./errors')

/** Transports by config type: { checkOptions(options), create(options, historySize) } (lib/transports/index.js fills it). */
const kinds = new Map()

function registerTransport(type, kind) {
  kinds.set(type, kind)
}

function kindOf(type) {
  if (!kinds.has(type)) require('./transports')
  return kinds.get(type)
}

/** Throws a TypeError naming the field when `options` ({ type, ... }) configures no transport. */
function checkTransportOptions(options) {
  const kind = typeof options.type === 'string' ? kindOf(options.type) : undefined
  if (kind === undefined) {
    const known = ['memory', ...kinds.keys()].map((t) => `"${t}"`).join(' or ')
    throw invalidArg('config.transport.type', known, options.type)
  }
  kind.checkOptions(options)
}

/** A new transport for the config `options` ({ type, ...}, checked), or null for the in-memory one. */
function createTransport(options, historySize) {
  if (options.type === 'memory') return null
  return kindOf(options.type).create(options, historySize)
}

module.exports = { registerTransport, checkTransportOptions, createTransport }
