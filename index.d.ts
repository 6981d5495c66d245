// Type definitions for happen. Kept by hand: the public API is the JS layer over the native
// core, and __test__/types checks these against the documentation's examples under --strict.

/** Where an event sits in the causal chain. */
export interface CausalContext {
  /** Unique id of this event. */
  readonly id: string
  /** Id of the node that sent it, or null for a send from outside any node. */
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

/** What a caller sends. */
export interface EventInput<P = any> {
  type: string
  payload?: P
  causationId?: string | null
  correlationId?: string | null
}

/** What a handler receives for a single event. */
export interface HappenEvent<P = any> {
  readonly type: string
  readonly payload: P
  readonly context: { readonly causal: CausalContext }
}

/** The node running a handler, as seen in `context.node`. */
export interface NodeRef {
  readonly id: string
}

/** The context of one node's flow for one event; the flow may store its own fields on it. */
export interface EventContext {
  causal: CausalContext
  node: HappenNode
  [key: string]: any
}

/** The context of one node's flow for a batch. */
export interface BatchContext {
  /** Epoch milliseconds when the node received the batch. */
  receivedAt: number
  node: HappenNode
  /** Each event's causal context, in the order sent. */
  events: Array<{ causal: CausalContext }>
  /** The batch's first event's causal context: sends from the flow are caused by it. */
  causal: CausalContext
  [key: string]: any
}

/** A batch as a handler receives it: the events as sent, in order. */
export type DeliveredBatch<P = any> = EventInput<P>[] & {
  readonly type?: undefined
  readonly payload?: undefined
  readonly context?: undefined
}

/** One event, or a batch; `Array.isArray` tells them apart. */
export type Delivered<P = any> = HappenEvent<P> | DeliveredBatch<P>

/**
 * A handler receives one event or, for a batch, the array of events as sent; narrow with
 * `Array.isArray`. Returning a function continues the flow with it; any other value is the
 * node's result.
 */
export type Handler<P = any> = (eventOrEvents: Delivered<P>, context: EventContext | BatchContext) => unknown

/** A pattern: an exact type, `*` for one dot-separated segment, `{a,b}` alternatives, `'*'` for all, or a predicate. */
export type Pattern = string | ((type: string) => boolean)

export interface ReturnOptions {
  /** Resolve to every node's outcome, like Promise.allSettled, instead of rejecting on failure. */
  settled?: boolean
  /** Reject with a TIMEOUT HappenError when flows are still running after this many milliseconds. */
  timeout?: number
}

export type SettledEntry = { status: 'fulfilled'; value: any } | { status: 'rejected'; reason: any }

export interface SendResult {
  /** The id of the (first) event sent; null for an empty batch. */
  readonly id: string | null
  /** Every event id sent: one, or one per event of a batch. */
  readonly ids: string[]
  /** Settles when every target's flow has finished. */
  return(options: ReturnOptions & { settled: true }): Promise<Record<string, SettledEntry>>
  return(options?: ReturnOptions): Promise<any>
  /** The causal tree of this send. */
  trace(): TraceTree | null
}

/** `send` resolves once every target has the event; `.return()` may be called on it directly. */
export interface SendPromise extends Promise<SendResult> {
  return(options: ReturnOptions & { settled: true }): Promise<Record<string, SettledEntry>>
  return(options?: ReturnOptions): Promise<any>
  trace(): TraceTree | null
}

export type Target = HappenNode | string | NodeArray | HappenNode[]

export interface HappenNode extends NodeRef {
  getId(): string
  /** Registers a handler; returns a function that removes it. */
  on(pattern: Pattern, handler: Handler): () => void
  /** Sends to this node itself. */
  send(eventOrEvents: EventInput | EventInput[]): SendPromise
  /** Sends to `target` with this node as sender. */
  send(target: Target, eventOrEvents: EventInput | EventInput[]): SendPromise
  /** Runs this node's flow now and resolves to its result. */
  process(eventOrEvents: EventInput | EventInput[]): Promise<any>
  /** Delivers the event to every node of the runtime. */
  broadcast(event: EventInput): SendPromise
  /** Removes the node and releases its handlers. */
  dispose(): void
  toJSON(): { id: string }
}

export interface NodeArray extends Iterable<HappenNode> {
  readonly nodes: readonly HappenNode[]
  readonly length: number
  /** Registers the handler on every node; returns one remover for all. */
  on(pattern: Pattern, handler: Handler): () => void
  /** Fan-out: every node runs its own flow. Results come back keyed by node id. */
  send(eventOrEvents: EventInput | EventInput[]): SendPromise
  /** Runs every node's flow and resolves to the results keyed by node id. */
  process(eventOrEvents: EventInput | EventInput[]): Promise<Record<string, any>>
}

export interface TraceBranch {
  node: string
  steps: Array<{ name: string }>
  outcome: 'fulfilled' | 'rejected' | 'running' | 'unmatched'
  /** Milliseconds; null while running. */
  duration: number | null
  error?: string
  children: TraceEvent[]
}

export interface TraceEvent {
  id: string
  type: string
  sender: string | null
  causationId: string | null
  correlationId: string
  timestamp: number
  batch?: { size: number; ids: string[] }
  branches: TraceBranch[]
  children: TraceEvent[]
}

/** A trace is its tree; `String(tree)` prints it as indented text. */
export type TraceTree = TraceEvent | { correlationId: string; children: TraceEvent[] }

/** `initializeHappen({ transport: { type: 'nats', servers } })`: nodes in other processes by id. */
export interface NatsTransportConfig {
  type: 'nats'
  /** Server URLs, e.g. `['nats://127.0.0.1:4222']`. */
  servers: string[]
  /** Client name the server shows. */
  name?: string
  user?: string
  pass?: string
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
}

export interface HappenConfig {
  /** Number of events the causal history holds (default 10,000). */
  historySize?: number
  transport?: { type: 'memory' } | NatsTransportConfig
}

export interface HappenRuntime {
  createNode(id: string, options?: Record<string, unknown>): HappenNode
  createNodeArray(nodes: HappenNode[] | NodeArray): NodeArray
  /** The node with this id: a local node itself, else (NATS transport) a handle to the node of that id in another process. */
  node(id: string): HappenNode
  trace(idOrCorrelationId: string): TraceTree | null
  /** Resolves once connected and every node created so far is reachable from other processes (NATS); at once for memory. */
  ready(): Promise<void>
  shutdown(): Promise<void>
  /**
   * Starts a worker thread running `module` (a URL, or a file path relative to the working
   * directory). In it, `createNode` and `initializeHappen()` from 'happen' give a runtime
   * joined to this one's core: its nodes are reachable by id from every thread. Resolves once
   * the module's top level has run. shutdown() terminates the workers it started.
   */
  worker(module: string | URL, options?: WorkerOptions): Promise<WorkerHandle>
}

export interface WorkerOptions {
  /** Given to the module as `workerData` of 'node:worker_threads' (structured clone). */
  workerData?: unknown
  /** The thread's name (as `new Worker(..., { name })`). */
  name?: string
}

export interface WorkerHandle {
  readonly threadId: number
  /** Ids of the nodes the module created at its top level. */
  readonly nodes: string[]
  /** Ends the thread; its nodes leave the runtime and their waiting entries fail with NODE_LOST. */
  terminate(): Promise<void>
}

export type HappenErrorCode =
  | 'SHUTDOWN'
  | 'DUPLICATE_NODE'
  | 'UNKNOWN_NODE'
  | 'HANDLER_FAILED'
  | 'TIMEOUT'
  | 'FLOW_TOO_LONG'
  | 'DISPOSED'
  | 'INTERNAL'
  | 'UNKNOWN_HANDLER'
  /** NATS: a payload or result JSON cannot carry; worker threads: one structured clone cannot (the message names the field). */
  | 'NOT_SERIALIZABLE'
  /** NATS: an event or batch larger, as JSON, than the server's max_payload. */
  | 'PAYLOAD_TOO_LARGE'
  /** NATS: no process hosts a node with that id. */
  | 'NO_RESPONDERS'
  /** NATS: the process of a node went away while its flow was running; worker threads: its thread exited. */
  | 'NODE_LOST'
  /** NATS: the server could not be reached. */
  | 'CONNECTION_FAILED'
  /** NATS: on()/dispose() on a handle of a node that lives in another process. */
  | 'REMOTE_NODE'

export class HappenError extends Error {
  readonly name: 'HappenError'
  readonly code: HappenErrorCode
  /** HANDLER_FAILED and TIMEOUT: the results that did arrive, keyed by node id. */
  readonly results?: Record<string, any>
  /** HANDLER_FAILED: what each failed node threw, keyed by node id. */
  readonly errors?: Record<string, unknown>
  /** HANDLER_FAILED: each failure with its node, event type and flow step. */
  readonly failures?: Array<{ node: string; type: string; step: string; error: unknown }>
  /** TIMEOUT: ids of the nodes still running. */
  readonly pending?: string[]
}

export function initializeHappen(config?: HappenConfig): HappenRuntime
export function createNode(id: string, options?: Record<string, unknown>): HappenNode
export function createNodeArray(nodes: HappenNode[] | NodeArray): NodeArray
export function node(id: string): HappenNode
export function trace(idOrCorrelationId: string): TraceTree | null
export function shutdown(): Promise<void>
/** `worker()` of the default runtime (the one behind createNode). */
export function worker(module: string | URL, options?: WorkerOptions): Promise<WorkerHandle>
