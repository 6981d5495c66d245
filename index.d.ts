// Type definitions for happen. Kept by hand: the public API is the JS layer over the native
// core. __test__/types checks them under --strict against the documentation's examples, and
// checks that the mistakes a user can make are refused. `npm run docs` renders them (TypeDoc).

/**
 * happen: an event framework for Node.js with a Rust core. Send one event to many nodes
 * (fan-out), many events to one node (fan-in batches), let each node follow its own flow, and
 * get every result back keyed by node id, with the causal history of everything that happened.
 *
 * @example
 * ```ts
 * import { createNode, createNodeArray } from 'happen'
 *
 * const nodes = createNodeArray([createNode('a'), createNode('b')])
 * nodes.on('ping', (event, context) => `${context.node.id} got ${event.type}`)
 * const results = await nodes.send({ type: 'ping' }).return()
 * // { a: 'a got ping', b: 'b got ping' }
 * ```
 * @packageDocumentation
 */

/**
 * Where an event sits in the causal chain: `event.context.causal` in a handler.
 *
 * @example
 * ```ts
 * node.on('order.created', (event) => {
 *   const { id, sender, causationId, correlationId, path } = event.context.causal
 *   return { id, sender, causationId, correlationId, path }
 * })
 * ```
 */
export interface CausalContext {
  /** Unique id of this event. */
  readonly id: string
  /** Id of the node that sent it, or null for `nodes.send` from outside any node. */
  readonly sender: string | null
  /** Id of the event whose flow sent this one; null for a root event. */
  readonly causationId: string | null
  /** Shared by every event of one causal chain; a root event's is its own id. */
  readonly correlationId: string
  /** Node ids the chain passed through, ending with the sender. */
  readonly path: readonly string[]
  /** Epoch milliseconds when it was sent. */
  readonly timestamp: number
}

/**
 * What a caller sends: a type, an optional payload, and optionally its own causal ids.
 *
 * @example
 * ```ts
 * const event: EventInput<{ sku: string }> = { type: 'order.created', payload: { sku: 'A-42' } }
 * await node.send(event)
 * ```
 */
export interface EventInput<P = any> {
  /** The event's type, matched against handler patterns. */
  type: string
  /** Any value; delivered as is within one thread. */
  payload?: P
  /** The id of the event that caused this one, when it is not the handled event. */
  causationId?: string | null
  /** The correlation this event belongs to, when it is not inherited. */
  correlationId?: string | null
}

/**
 * What a handler receives for a single event.
 *
 * @example
 * ```ts
 * node.on<{ sku: string }>('order.created', (event) => event.payload.sku)
 * ```
 */
export interface HappenEvent<P = any> {
  readonly type: string
  readonly payload: P
  readonly context: { readonly causal: CausalContext }
}

/**
 * The node running a handler, as seen in `context.node`.
 *
 * @example
 * ```ts
 * nodes.on('ping', (event, context) => context.node.id)
 * ```
 */
export interface NodeRef {
  /** The node's id. */
  readonly id: string
}

/**
 * The context of one node's flow for one event. It is the same object for every function of
 * the flow, and a different one for every node and flow: the flow may keep its state on it.
 * `receivedAt` and `events` belong to a batch's context (`never` here).
 *
 * @example
 * ```ts
 * node.on('step', (event, context) => {
 *   context.count = (context.count ?? 0) + 1
 *   return context.causal.correlationId
 * })
 * ```
 */
export interface EventContext {
  causal: CausalContext
  /** The node running the flow; `context.node.send(...)` sends from inside the flow. */
  node: HappenNode
  /** Only a batch's context has it. */
  readonly receivedAt: never
  /** Only a batch's context has it. */
  readonly events: never
  [key: string]: any
}

/**
 * The context of one node's flow for a batch.
 *
 * @example
 * ```ts
 * node.on('metric', (events, context) => {
 *   if (Array.isArray(events)) {
 *     const received: number = context.receivedAt
 *     return context.events.map((e) => e.causal.id)
 *   }
 * })
 * ```
 */
export interface BatchContext {
  /** Epoch milliseconds when the node received the batch. */
  readonly receivedAt: number
  node: HappenNode
  /** Each event's causal context, in the order sent. */
  readonly events: ReadonlyArray<{ readonly causal: CausalContext }>
  /** The batch's first event's causal context: sends from the flow are caused by it. */
  causal: CausalContext
  [key: string]: any
}

/**
 * One event of a batch as a handler receives it: as sent, its payload typed `P` as a single
 * event's is (an event sent without a payload has `undefined` there, as a single event does).
 *
 * @example
 * ```ts
 * node.on<{ sku: string }>('order.created', (events) =>
 *   Array.isArray(events) ? events.map((e: BatchEvent<{ sku: string }>) => e.payload.sku) : [])
 * ```
 */
export interface BatchEvent<P = any> extends EventInput<P> {
  payload: P
}

/**
 * A batch as a handler receives it: the events as sent, in order. `Array.isArray` tells it
 * from a single event.
 *
 * @example
 * ```ts
 * node.on('point', (eventOrEvents) =>
 *   Array.isArray(eventOrEvents) ? eventOrEvents.length : 1)
 * ```
 */
export type DeliveredBatch<P = any> = BatchEvent<P>[] & {
  /** A batch has no single type, payload or context: narrow with `Array.isArray` first. */
  readonly type: never
  readonly payload: never
  readonly context: never
}

/**
 * One event, or a batch; `Array.isArray` tells them apart.
 *
 * @example
 * ```ts
 * const size = (delivered: Delivered) => (Array.isArray(delivered) ? delivered.length : 1)
 * ```
 */
export type Delivered<P = any> = HappenEvent<P> | DeliveredBatch<P>

/**
 * A handler's context: an event's or, for a batch, the batch's.
 *
 * @example
 * ```ts
 * const describe = (context: HandlerContext) => context.node.id
 * ```
 */
export type HandlerContext = EventContext | BatchContext

/**
 * A handler receives one event or, for a batch, the array of events as sent; narrow with
 * `Array.isArray`. Returning a function continues the flow with it (called with the same
 * arguments); any other value is the node's result. May be async. A handler for batches only
 * may declare `(events: DeliveredBatch<P>, context: BatchContext)`.
 *
 * @example
 * ```ts
 * const validate: Handler<{ sku: string }> = (event) => {
 *   if (Array.isArray(event)) return event.length
 *   return event.payload.sku ? persist : 'rejected'
 * }
 * function persist() {
 *   return 'saved'
 * }
 * ```
 */
export type Handler<P = any> = {
  // A method signature, so a handler written for one form (a single event or a batch) is accepted.
  handle(eventOrEvents: Delivered<P>, context: HandlerContext): unknown
}['handle']

/**
 * A pattern: an exact type; `*` for exactly one dot-separated segment (`'order.*'`); `**` for
 * one or more (`'order.**'`); `'*'` or `'**'` alone for every type; `{a,b}` alternatives; or a
 * predicate over the type.
 *
 * @example
 * ```ts
 * node.on('order.**', handler)
 * node.on('{order,payment}.created', handler)
 * node.on((type) => type.endsWith('.failed'), handler)
 * ```
 */
export type Pattern = string | ((type: string) => boolean)

/**
 * What `return()` accepts.
 *
 * @example
 * ```ts
 * await nodes.send(event).return({ settled: true, timeout: 1000 })
 * ```
 */
export interface ReturnOptions {
  /** Resolve to every node's outcome, like Promise.allSettled, instead of rejecting on failure. */
  settled?: boolean
  /** Reject with a TIMEOUT HappenError when flows are still running after this many milliseconds. */
  timeout?: number
}

/**
 * One node's outcome in `return({ settled: true })`.
 *
 * @example
 * ```ts
 * const outcomes = await nodes.send(event).return({ settled: true })
 * for (const [id, o] of Object.entries(outcomes)) {
 *   if (o.status === 'rejected') console.error(id, o.reason)
 * }
 * ```
 */
export type SettledEntry<R = any> = { status: 'fulfilled'; value: R } | { status: 'rejected'; reason: unknown }

/**
 * A send in flight. `T` is what `return()` resolves to: one node's result `R`, or results
 * keyed by node id; `Id` is `string`, or `string | null` when the send may be an empty batch.
 *
 * @example
 * ```ts
 * const result = await node.send({ type: 'ping' })
 * const value = await result.return()
 * const tree = trace(result.id)
 * ```
 */
export interface SendResult<T = any, R = any, Id extends string | null = string | null> {
  /** The id of the (first) event sent; null for an empty batch. */
  readonly id: Id
  /** Every event id sent: one, or one per event of a batch. */
  readonly ids: string[]
  /**
   * Settles when every target's flow has finished: its result, or the results keyed by node
   * id. A failure rejects with a `HANDLER_FAILED` HappenError that still holds the others'.
   *
   * @example
   * ```ts
   * const result = await nodes.send({ type: 'verify' })
   * const all = await result.return()
   * const outcomes = await result.return({ settled: true, timeout: 500 })
   * ```
   */
  return(options: ReturnOptions & { settled: true }): Promise<Record<string, SettledEntry<R>>>
  return(options?: ReturnOptions): Promise<T>
  /**
   * The causal tree of this send; null for an empty batch.
   *
   * @example
   * ```ts
   * console.log(String(result.trace()))
   * ```
   */
  trace(): TraceTree | null
}

/**
 * `send` resolves once every target has the event; `.return()` may be called on it directly.
 * Under the NATS transport, a send past the bound on what waits for replies (`maxInFlight`,
 * `maxInFlightBytes`) resolves once it was let go, and rejects (`SHUTDOWN`,
 * `CONNECTION_FAILED`) when it never leaves.
 *
 * @example
 * ```ts
 * const results = await nodes.send({ type: 'ping' }).return()
 * ```
 */
export interface SendPromise<T = any, R = any, Id extends string | null = string | null>
  extends Promise<SendResult<T, R, Id>> {
  /**
   * `(await send(…)).return(options)` in one call.
   *
   * @example
   * ```ts
   * const results = await nodes.send({ type: 'ping' }).return({ timeout: 1000 })
   * ```
   */
  return(options: ReturnOptions & { settled: true }): Promise<Record<string, SettledEntry<R>>>
  return(options?: ReturnOptions): Promise<T>
  /**
   * The causal tree of this send (so far).
   *
   * @example
   * ```ts
   * const sending = node.send({ type: 'ping' })
   * await sending
   * console.log(String(sending.trace()))
   * ```
   */
  trace(): TraceTree | null
}

/**
 * Who a send reaches: a node, a node id, a NodeArray or an array of nodes.
 *
 * @example
 * ```ts
 * await orders.send('payments', { type: 'charge' })
 * ```
 */
export type Target = HappenNode | string | NodeArray | readonly HappenNode[]

/**
 * Targets whose results come back keyed by node id.
 *
 * @example
 * ```ts
 * const keyed: KeyedTarget = [payments, stock]
 * const results = await orders.send(keyed, { type: 'check' }).return()
 * ```
 */
export type KeyedTarget = NodeArray | readonly HappenNode[]

/**
 * A batch that holds at least one event: its send has an id.
 *
 * @example
 * ```ts
 * const result = await node.send([{ type: 'point', payload: 1 }, { type: 'point', payload: 2 }])
 * trace(result.id) // result.id: string
 * ```
 */
export type NonEmptyBatch<P = any> = readonly [EventInput<P>, ...EventInput<P>[]]

/**
 * `createNode`'s options. None is defined yet: any key is refused (a `TypeError` at runtime).
 *
 * @example
 * ```ts
 * const node = createNode('orders', {})
 * ```
 */
export type NodeOptions = { readonly [key: string]: never }

/**
 * A node: registers handlers, sends, processes.
 *
 * @example
 * ```ts
 * const orders = createNode('orders')
 * orders.on('order.created', (event) => ({ accepted: true }))
 * const accepted = await orders.process({ type: 'order.created' })
 * ```
 */
export interface HappenNode extends NodeRef {
  /**
   * The node's id.
   *
   * @example
   * ```ts
   * createNode('orders').getId() // 'orders'
   * ```
   */
  getId(): string
  /**
   * Registers a handler for the types `pattern` matches; returns a function that removes it.
   * `P` is the payload type the handler expects.
   *
   * @example
   * ```ts
   * interface Order { sku: string }
   * const remove = orders.on<Order>('order.created', (event) => event.payload.sku)
   * remove()
   * ```
   */
  on<P = any>(pattern: Pattern, handler: Handler<P>): () => void
  /**
   * Sends to this node itself (from inside a handler, the running node is the sender).
   * `R` is the type of the node's result.
   *
   * @example
   * ```ts
   * const sku = await orders.send<string>({ type: 'order.created', payload: { sku: 'A-1' } }).return()
   * ```
   */
  send<R = any>(event: EventInput): SendPromise<R, R, string>
  send<R = any>(events: NonEmptyBatch): SendPromise<R, R, string>
  send<R = any>(events: readonly EventInput[]): SendPromise<R, R>
  send<R = any>(eventOrEvents: EventInput | readonly EventInput[]): SendPromise<R, R>
  /**
   * Sends to `target` with this node as sender: one node (or id) gives its result, a
   * NodeArray or an array of nodes the results keyed by node id.
   *
   * @example
   * ```ts
   * const charged = await orders.send<boolean>('payments', { type: 'charge' }).return()
   * const all = await orders.send<boolean>([payments, stock], { type: 'check' }).return()
   * // all: Record<string, boolean>
   * ```
   */
  send<R = any>(target: KeyedTarget, event: EventInput): SendPromise<Record<string, R>, R, string>
  send<R = any>(target: KeyedTarget, events: NonEmptyBatch): SendPromise<Record<string, R>, R, string>
  send<R = any>(target: KeyedTarget, events: readonly EventInput[]): SendPromise<Record<string, R>, R>
  send<R = any>(target: HappenNode | string, event: EventInput): SendPromise<R, R, string>
  send<R = any>(target: HappenNode | string, events: NonEmptyBatch): SendPromise<R, R, string>
  send<R = any>(target: HappenNode | string, events: readonly EventInput[]): SendPromise<R, R>
  send<R = any>(
    target: Target,
    eventOrEvents: EventInput | readonly EventInput[],
  ): SendPromise<R | Record<string, R>, R>
  /**
   * Runs this node's flow for the event(s) now and resolves to its result (null when no
   * handler matched, and for an empty batch).
   *
   * @example
   * ```ts
   * const total = await stats.process<number>([{ type: 'point', payload: 1 }, { type: 'point', payload: 2 }])
   * ```
   */
  process<R = any>(eventOrEvents: EventInput | readonly EventInput[]): Promise<R>
  /**
   * Delivers the event to every node of the runtime, with this node as sender; results come
   * back keyed by node id.
   *
   * @example
   * ```ts
   * const answers = await orders.broadcast<string>({ type: 'who-is-there' }).return()
   * ```
   */
  broadcast<R = any>(event: EventInput): SendPromise<Record<string, R>, R, string>
  /**
   * Removes the node and releases its handlers; later calls on it fail with `DISPOSED`.
   *
   * @example
   * ```ts
   * orders.dispose()
   * ```
   */
  dispose(): void
  /**
   * `{ id }`: what `JSON.stringify(node)` gives.
   *
   * @example
   * ```ts
   * JSON.stringify(orders) // '{"id":"orders"}'
   * ```
   */
  toJSON(): { id: string }
}

/**
 * Several nodes as one receiver: `on` registers on each, `send` fans out to all.
 *
 * @example
 * ```ts
 * const nodes = createNodeArray([orders, payments, stock])
 * nodes.on('verify', (event, context) => context.node.id)
 * const ids = await nodes.send<string>({ type: 'verify' }).return()
 * ```
 */
export interface NodeArray extends Iterable<HappenNode> {
  /**
   * The nodes, in order.
   *
   * @example
   * ```ts
   * nodes.nodes.map((n) => n.id)
   * ```
   */
  readonly nodes: readonly HappenNode[]
  /**
   * How many nodes.
   *
   * @example
   * ```ts
   * nodes.length // 3
   * ```
   */
  readonly length: number
  /**
   * Registers the handler on every node; returns one remover for all.
   *
   * @example
   * ```ts
   * const remove = nodes.on<{ id: string }>('verify', (event, context) => `${context.node.id}: ${event.payload.id}`)
   * ```
   */
  on<P = any>(pattern: Pattern, handler: Handler<P>): () => void
  /**
   * Fan-out: every node runs its own flow. Results come back keyed by node id.
   *
   * @example
   * ```ts
   * const results: Record<string, boolean> = await nodes.send<boolean>({ type: 'verify' }).return()
   * ```
   */
  send<R = any>(event: EventInput): SendPromise<Record<string, R>, R, string>
  send<R = any>(events: NonEmptyBatch): SendPromise<Record<string, R>, R, string>
  send<R = any>(events: readonly EventInput[]): SendPromise<Record<string, R>, R>
  send<R = any>(eventOrEvents: EventInput | readonly EventInput[]): SendPromise<Record<string, R>, R>
  /**
   * Runs every node's flow and resolves to the results keyed by node id.
   *
   * @example
   * ```ts
   * const results = await nodes.process<boolean>({ type: 'verify' })
   * ```
   */
  process<R = any>(eventOrEvents: EventInput | readonly EventInput[]): Promise<Record<string, R>>
}

/**
 * One node's flow in a trace.
 *
 * @example
 * ```ts
 * const tree = trace(id)
 * if (tree && 'id' in tree) for (const b of tree.branches) console.log(b.node, b.duration)
 * ```
 */
export interface TraceBranch {
  node: string
  /** The flow's functions, by name, in order. */
  steps: Array<{ name: string }>
  outcome: 'fulfilled' | 'rejected' | 'running' | 'unmatched'
  /** Milliseconds this node's own flow ran; null while running. */
  duration: number | null
  /** The failure's step and message, for a rejected flow. */
  error?: string
  /** The events this flow sent. */
  children: TraceEvent[]
}

/**
 * One event (or batch) in a trace, with one branch per node that received it.
 *
 * @example
 * ```ts
 * const tree = trace(id)
 * if (tree && 'id' in tree) console.log(tree.type, tree.branches.length)
 * ```
 */
export interface TraceEvent {
  id: string
  type: string
  sender: string | null
  causationId: string | null
  correlationId: string
  timestamp: number
  /** For a batch: its size and every event id. */
  batch?: { size: number; ids: string[] }
  branches: TraceBranch[]
  /** Events caused by this one outside any flow (their sender named it as cause). */
  children: TraceEvent[]
}

/**
 * A trace is its tree: one event, or several under a correlation id. `String(tree)` prints
 * it as indented text; `JSON.stringify(tree)` exports it.
 *
 * @example
 * ```ts
 * const tree = trace(result.id)
 * console.log(String(tree))
 * ```
 */
export type TraceTree = TraceEvent | TraceCorrelation

/**
 * The tree of a correlation whose events have several roots.
 *
 * @example
 * ```ts
 * const tree = trace('checkout-7')
 * if (tree && !('id' in tree)) console.log(tree.children.length, 'roots')
 * ```
 */
export interface TraceCorrelation {
  correlationId: string
  children: TraceEvent[]
}

/**
 * `initializeHappen({ transport: { type: 'nats', servers } })`: nodes in other processes by id.
 *
 * @example
 * ```ts
 * const happen = await initializeHappen({ transport: { type: 'nats', servers: ['nats://127.0.0.1:4222'] } })
 * ```
 */
export interface NatsTransportConfig {
  type: 'nats'
  /**
   * Server URLs, e.g. `['nats://127.0.0.1:4222']`. Credentials may be written in them, as the
   * NATS clients read them: `nats://user:pass@host` (user and password), `nats://token@host` (a
   * token), percent-encoded (`encodeURIComponent`). They are one identity for the connection:
   * URLs that carry credentials carry the same ones, and `user`/`pass`/`token`, if given too,
   * agree with them (otherwise a TypeError). Messages and logs show them redacted:
   * `nats://user:***@host`, `nats://***@host`.
   */
  servers: string[]
  /** Client name the server shows. */
  name?: string
  /** User and password (or in a server URL: `nats://user:pass@host`); no message shows the password. */
  user?: string
  pass?: string
  /** A token (or in a server URL: `nats://token@host`); no message shows it. */
  token?: string
  /** An nkey seed. */
  nkey?: string
  /** A `.creds` file (JWT and nkey seed). */
  credentialsFile?: string
  /** Require TLS. */
  tls?: boolean
  /** PEM file of the CA of the server's certificate. */
  tlsCaFile?: string
  /** PEM client certificate and key, for servers that verify clients. */
  tlsCertFile?: string
  tlsKeyFile?: string
  /** How long the first connection may take, in ms (default 2000); past it: CONNECTION_FAILED. */
  connectTimeout?: number
  /** Reconnect attempts after a lost connection (default: forever). */
  maxReconnects?: number
  /** A remote flow running longer than this (ms, default 1000) is checked on; a gone node fails it with NODE_LOST. */
  heartbeat?: number
  /** Coalesce what one turn of the event loop sends to one runtime into one message (default true). */
  frames?: boolean
  /**
   * Send a turn's frames for several runtimes as one message on `happen.fan`, which the server
   * fans out and each runtime takes its own part of (default false; needs `frames`). Every
   * runtime that may listen there reads every fan frame: leave it off where processes are
   * confined by permissions (README, "Security").
   */
  fan?: boolean
  /**
   * The most remote branches (one per target node of a send) this runtime's sends keep waiting
   * for replies (default 1024). Past it, a send's remote part is held back, in order, until
   * replies free room: `await send()` resolves once it left, so a producer that awaits its sends
   * goes at the pace its receivers take. A caller that does not await is not slowed: its sends
   * wait in its own process (memory grows with what it queued) and leave in order. A fan-out
   * wider than the bound leaves alone once nothing waits. Sends made by a flow serving an event
   * from another process are never held (they could wait on each other).
   *
   * @example
   * ```ts
   * const happen = await initializeHappen({ transport: { type: 'nats', servers: ['nats://127.0.0.1:4222'], maxInFlight: 256 } })
   * ```
   */
  maxInFlight?: number
  /**
   * The most bytes of events (their JSON) this runtime's sends keep waiting for replies
   * (default 64 MiB); past it, sends are held back as for `maxInFlight`.
   */
  maxInFlightBytes?: number
  /**
   * Names this process's own subjects `happen.rt.<scope>.…` and `_HAPPEN.<scope>.…`, so that a
   * NATS permission can confine it to them (a subject token: letters, digits, `_`, `-`; see
   * examples/nats-permissions/server.conf).
   */
  scope?: string
  /** What other runtimes may make this one hold; over a limit, the excess is refused and logged. */
  limits?: NatsLimits
}

/**
 * Bounds on what other runtimes may make a runtime hold (NatsTransportConfig `limits`).
 *
 * @example
 * ```ts
 * const happen = await initializeHappen({
 *   transport: { type: 'nats', servers: ['nats://127.0.0.1:4222'], limits: { remoteNodes: 100_000 } },
 * })
 * ```
 */
export interface NatsLimits {
  /** Node ids any one runtime may announce (default 5,000). */
  nodesPerRuntime?: number
  /** Remote node ids known in all (default 10,000): what `broadcast` reaches elsewhere. */
  remoteNodes?: number
  /** Handles kept of remote nodes known only as senders of events served here (default 1,000). */
  senders?: number
  /** Peer runtimes whose event ids the core keeps as numbers (default 4,096; further ones as text). */
  peers?: number
}

/**
 * What `initializeHappen` accepts; an unknown key is refused.
 *
 * @example
 * ```ts
 * const happen = initializeHappen({ historySize: 50_000 })
 * ```
 */
export interface HappenConfig {
  /** Number of events the causal history holds (default 10,000). */
  historySize?: number
  /** Where nodes live: `memory` (default, this thread) or `nats` (other processes). */
  transport?: { type: 'memory' } | NatsTransportConfig
  /**
   * OpenTelemetry spans for flows (default true): with `@opentelemetry/api` installed and a
   * tracer provider registered, every flow is a span `happen.process <type>`, parented as the
   * causal tree, across NATS and worker threads; `false` opts out. Without the API or a
   * provider, nothing is traced and nothing is spent.
   *
   * @example
   * ```ts
   * const untraced = initializeHappen({ tracing: false })
   * ```
   */
  tracing?: boolean
  /**
   * OpenTelemetry metrics of sends and flows (default true): with `@opentelemetry/api` installed
   * and a meter provider registered, happen reports `happen.event.sent`,
   * `happen.flow.delivered`, `happen.flow.failures`, `happen.flow.active`,
   * `happen.flow.duration` and `happen.batch.size` (README, "Metrics with OpenTelemetry");
   * `false` opts out. Without the API or a provider, nothing is counted and nothing is spent.
   *
   * @example
   * ```ts
   * const unmetered = initializeHappen({ metrics: false })
   * ```
   */
  metrics?: boolean
}

/**
 * A runtime: its own nodes, ids and causal history.
 *
 * @example
 * ```ts
 * const happen = initializeHappen()
 * const a = happen.createNode('a')
 * await happen.shutdown()
 * ```
 */
export interface HappenRuntime {
  /**
   * A node of this runtime; ids are unique per runtime and compared as written: an id that is
   * not well-formed UTF-16 (a lone surrogate, `'x\ud800'`) is refused with a TypeError.
   *
   * @example
   * ```ts
   * const orders = happen.createNode('orders')
   * ```
   */
  createNode(id: string, options?: NodeOptions): HappenNode
  /**
   * Several nodes as one receiver.
   *
   * @example
   * ```ts
   * const nodes = happen.createNodeArray([a, b])
   * ```
   */
  createNodeArray(nodes: readonly HappenNode[] | NodeArray): NodeArray
  /**
   * The node with this id: a local node itself, else (NATS transport) a handle to the node of
   * that id in another process.
   *
   * @example
   * ```ts
   * await happen.node('payments').process({ type: 'charge' })
   * ```
   */
  node(id: string): HappenNode
  /**
   * The causal tree of an event id or correlation id; null when the history holds neither.
   *
   * @example
   * ```ts
   * console.log(String(happen.trace(result.id)))
   * ```
   */
  trace(idOrCorrelationId: string): TraceTree | null
  /**
   * Resolves once connected and every node created so far is reachable from other processes
   * (NATS); at once for memory.
   *
   * @example
   * ```ts
   * await happen.ready()
   * ```
   */
  ready(): Promise<void>
  /**
   * Ends the runtime: releases every node and handler; later calls fail with `SHUTDOWN`.
   *
   * @example
   * ```ts
   * afterAll(() => happen.shutdown())
   * ```
   */
  shutdown(): Promise<void>
  /**
   * Starts a worker thread running `module` (a URL, or a file path relative to the working
   * directory). In it, `createNode` and `initializeHappen()` from 'happen' give a runtime
   * joined to this one's core: its nodes are reachable by id from every thread. Resolves once
   * the module's top level has run. shutdown() terminates the workers it started.
   *
   * @example
   * ```ts
   * const thread = await happen.worker(new URL('./resize.mjs', import.meta.url), { name: 'resize' })
   * const result = await happen.node('resizer').process({ type: 'image.resize', payload: { width: 64 } })
   * ```
   */
  worker(module: string | URL, options?: WorkerOptions): Promise<WorkerHandle>
}

/**
 * Options of `worker()`.
 *
 * @example
 * ```ts
 * await worker('./hasher.mjs', { name: 'hasher', workerData: { rounds: 10 } })
 * ```
 */
export interface WorkerOptions {
  /** Given to the module as `workerData` of 'node:worker_threads' (structured clone). */
  workerData?: unknown
  /** The thread's name (as `new Worker(..., { name })`). */
  name?: string
  /**
   * Bounds on the thread's heap and stack (Node's Worker `resourceLimits`). A thread that
   * reaches one ends alone: its nodes' entries fail with NODE_LOST, the process and every
   * other node go on. Any other key, or a value that is not a positive number, is refused
   * with a TypeError naming it.
   */
  resourceLimits?: WorkerResourceLimits
}

/**
 * Limits of a worker thread's resources, in megabytes (Node's Worker `resourceLimits`).
 *
 * @example
 * ```ts
 * await worker('./parser.mjs', { resourceLimits: { maxOldGenerationSizeMb: 256, stackSizeMb: 4 } })
 * ```
 */
export interface WorkerResourceLimits {
  /** The main heap's size at most; past it the thread ends (ERR_WORKER_OUT_OF_MEMORY). */
  maxOldGenerationSizeMb?: number
  /** The heap space for recently created objects at most. */
  maxYoungGenerationSizeMb?: number
  /** The space for generated code. */
  codeRangeSizeMb?: number
  /** The thread's stack (Node's default 4); at least 0.5, as a smaller one can end the process. */
  stackSizeMb?: number
}

/**
 * A worker thread started by `worker()`.
 *
 * @example
 * ```ts
 * const thread = await worker('./hasher.mjs')
 * console.log(thread.threadId, thread.nodes) // e.g. 1 [ 'hasher' ]
 * ```
 */
export interface WorkerHandle {
  readonly threadId: number
  /** Ids of the nodes the module created at its top level. */
  readonly nodes: string[]
  /**
   * Ends the thread; its nodes leave the runtime and their waiting entries fail with NODE_LOST.
   *
   * @example
   * ```ts
   * await thread.terminate()
   * ```
   */
  terminate(): Promise<void>
}

/**
 * The codes of happen's own errors; the README says what to do about each.
 *
 * @example
 * ```ts
 * if (error instanceof HappenError && error.code === 'TIMEOUT') console.log(error.pending)
 * ```
 */
export type HappenErrorCode =
  /** The runtime was shut down. */
  | 'SHUTDOWN'
  /** A node with that id exists already (in this runtime, or elsewhere under NATS). */
  | 'DUPLICATE_NODE'
  /** No node with that id. */
  | 'UNKNOWN_NODE'
  /** One or more flows threw or rejected. */
  | 'HANDLER_FAILED'
  /** `return({ timeout })` elapsed with flows still running. */
  | 'TIMEOUT'
  /** A flow ran more than 10,000 steps. */
  | 'FLOW_TOO_LONG'
  /** The node was disposed. */
  | 'DISPOSED'
  /** A bug in happen (a caught panic of the native core). */
  | 'INTERNAL'
  /** A handler id the core does not know (a bug in happen). */
  | 'UNKNOWN_HANDLER'
  /**
   * A payload or result that cannot cross as it is (the message names the field): NATS, one
   * JSON would not carry or would change (a Date, NaN, a Map...); worker threads, one
   * structured clone cannot carry; either, one nested more than 1,000 levels, or one the
   * receiving thread could not decode.
   */
  | 'NOT_SERIALIZABLE'
  /** NATS: an event or batch larger, as JSON, than the server's max_payload. */
  | 'PAYLOAD_TOO_LARGE'
  /** NATS: no process hosts a node with that id. */
  | 'NO_RESPONDERS'
  /** NATS: the process of a node went away while its flow was running; worker threads: its thread exited. */
  | 'NODE_LOST'
  /** NATS: the server could not be reached. */
  | 'CONNECTION_FAILED'
  /** NATS: the server's permissions refuse this process a subscription or a publish it needs (the message names the subject). */
  | 'PERMISSION_DENIED'
  /** NATS: on()/dispose() on a handle of a node that lives in another process. */
  | 'REMOTE_NODE'

/**
 * Every error happen raises on its own account; `code` says which.
 *
 * @example
 * ```ts
 * try {
 *   await nodes.send(event).return()
 * } catch (error) {
 *   if (error instanceof HappenError && error.code === 'HANDLER_FAILED') {
 *     console.log(error.results, error.errors)
 *   }
 * }
 * ```
 */
export class HappenError extends Error {
  readonly name: 'HappenError'
  readonly code: HappenErrorCode
  /** HANDLER_FAILED and TIMEOUT: the results that did arrive, keyed by node id. */
  readonly results?: Record<string, unknown>
  /** HANDLER_FAILED: what each failed node threw, keyed by node id. */
  readonly errors?: Record<string, unknown>
  /** HANDLER_FAILED: each failure with its node, event type and flow step. */
  readonly failures?: Array<{ node: string; type: string; step: string; error: unknown }>
  /** TIMEOUT: ids of the nodes still running. */
  readonly pending?: string[]
}

/**
 * A runtime of its own (the top-level functions use a default one). Returns synchronously;
 * `await` it to wait for a NATS connection.
 *
 * @example
 * ```ts
 * const happen = initializeHappen({ historySize: 1000 })
 * ```
 */
export function initializeHappen(config?: HappenConfig): HappenRuntime
/**
 * A node of the default runtime.
 *
 * @example
 * ```ts
 * const orders = createNode('orders')
 * ```
 */
export function createNode(id: string, options?: NodeOptions): HappenNode
/**
 * Several nodes as one receiver (a non-empty array of distinct nodes).
 *
 * @example
 * ```ts
 * const nodes = createNodeArray([orders, payments])
 * ```
 */
export function createNodeArray(nodes: readonly HappenNode[] | NodeArray): NodeArray
/**
 * The node of the default runtime with this id.
 *
 * @example
 * ```ts
 * node('orders').send({ type: 'ping' })
 * ```
 */
export function node(id: string): HappenNode
/**
 * The causal tree of an event id or correlation id in the default runtime, or null.
 *
 * @example
 * ```ts
 * const result = await orders.send({ type: 'ping' })
 * console.log(String(trace(result.id)))
 * ```
 */
export function trace(idOrCorrelationId: string): TraceTree | null
/**
 * Shuts the default runtime down.
 *
 * @example
 * ```ts
 * await shutdown()
 * ```
 */
export function shutdown(): Promise<void>
/**
 * `worker()` of the default runtime (the one behind createNode).
 *
 * @example
 * ```ts
 * import { worker, node } from 'happen'
 *
 * await worker('./hasher.mjs')
 * const digest = await node('hasher').process({ type: 'hash', payload: 'abc' })
 * ```
 */
export function worker(module: string | URL, options?: WorkerOptions): Promise<WorkerHandle>
