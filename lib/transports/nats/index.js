'use strict'

// The NATS transport: nodes in other processes addressed by id like local ones.
//
// What holds: nothing from the wire is acted on before inbound.js has checked its shape; a
// reply is believed only where its request went; what other runtimes can make this one hold is
// bounded (limits.js); what the server's permissions refuse is an error naming the subject
// (permissions.js), never a wait; what waits for replies is bounded (requests.js, backpressure).
//
// This folder: wire.js the codec, inbound.js the checks of what arrives, presence.js node ids
// and presence, requests.js requests and reply correlation, serving.js serving other processes,
// kept.js the replies kept for requesters that lost them, liveness.js liveness checks,
// permissions.js what the server refuses, limits.js what strangers may make it hold; the
// connection itself is src/nats.rs.
//
// Wire. <rt> is a runtime's id prefix; its route, <route>, is `<scope>.<rt>` with the `scope`
// option, else <rt>; its inbox `_HAPPEN.<route>.<secret>.`, the secret 128 random bits that
// presence never carries. Every answer goes to the reply subject of the message it answers
// (NATS's allow_responses).
//   happen.node.<id>   one subscription per local node. A request carries the event (JSON body)
//                      and its causal context (header `happen-causal`: a JSON array of its values,
//                      see wire.js encodeCausal, then 1 when sent again); its reply subject
//                      `<inbox><branch>` names the sender's branch. No node there: the
//                      server answers "no responders" (NO_RESPONDERS). Without a causal header:
//                      a liveness check of long-running remote branches.
//   happen.rt.<route> frames: once the sender knows which runtime hosts a node (from presence
//                      or an earlier reply), everything it sends that runtime in one turn of its
//                      event loop travels in frames (as few as fit the server's max_payload,
//                      headers included: see messageLimit): the entry count in the header, the
//                      entries one after another in one JSON array in the body, each k, k node
//                      ids, their k branch ids, the causal context's values, the event(s).
//                      Without a header: a liveness check of branches framed there (it follows
//                      their requests on the same subject, so it never overtakes them).
//                      A frame whose runtime is gone, or an entry whose node moved, is resent
//                      through happen.node.<id>.
//   happen.fan         fan frames: what one turn sends to two or more runtimes that replied within
//                      the last half heartbeat, as ONE publish the server fans out (every runtime
//                      subscribes). Header {t: target runtimes}; entries as in a frame with, after
//                      the branch ids, the index in t of each id's runtime: one send's event
//                      written once for all its targets. A runtime serves the ids meant for
//                      it (as a frame entry: a moved node is answered "retry") and skips a frame
//                      whose header does not name it. Replies, keyed by branch, come back on .f per
//                      runtime; each branch keeps its runtime, so its liveness check goes on
//                      happen.rt.<that runtime> and a gone runtime fails only its own nodes
//                      (NODE_LOST). A runtime not heard from lately gets its own happen.rt frame, so
//                      "no responders" still tells at once that it is gone. Only with `fan: true`.
//   <inbox>*           this runtime's replies, gathered per turn and reply subject and split like
//                      frames, on the subject of the frame (`x<frame>`), request (`<branch>`) or
//                      liveness check (`p<n>`) they answer: {h: replying route, r: [[branch, 1,
//                      steps, value] | [branch, 0, steps, {message, code, name}, step, retry], …]};
//                      a reply is believed only where its request went (requests.js _answers).
//                      `x<frame>` and `<branch>` also get the server's "no responders"; `p<n>`
//                      and `c<n>` the answers to liveness checks and id claims.
//   happen.presence    who hosts which node ids (by route), so broadcast reaches every node; a
//                      claim there never takes an id from a live host unless that host answers
//                      on the id's subject that it gives way (presence.js _conflict).

const native = require('../../native')
const debug = require('../../debug')
const { HappenError } = require('../../errors')
const { performance } = require('node:perf_hooks')
const { randomBytes } = require('node:crypto')
const { PRESENCE, FAN, checkJson, redactInboxes } = require('./wire')
const { Presence } = require('./presence')
const { Requests } = require('./requests')
const { Serving } = require('./serving')
const { Liveness } = require('./liveness')
const { createTransportMeter } = require('../../metrics')
const { Permissions } = require('./permissions')
const { serverUrls } = require('./options')
const { KeptReplies } = require('./kept')
const { DEFAULT_LIMITS, RemoteHosts, SenderHandles } = require('./limits')
const { Drops } = require('./inbound')
const { BranchTable, TurnTable } = require('../../tables')

/**
 * The default bound on what a runtime's sends hold waiting for replies (maxInFlight,
 * maxInFlightBytes): enough for the receivers to stay busy, small enough that a burst neither
 * grows the sender's memory nor buries a receiver in a backlog.
 */
const MAX_IN_FLIGHT = 1024
const MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024
/** How long (ms) one go of handling what the connection queued may run before the event loop gets a turn. */
const SLICE_MS = 10

/** The NATS transport (lib/transport.js): nodes of other processes, reached by id. */
class NatsTransport {
  constructor(options, historySize = 10_000) {
    this.options = options
    this.historySize = historySize
    this.host = null
  }

  /** Connects, as the runtime `host` (its id prefix names this runtime's subjects). */
  attach(host) {
    const { options, historySize } = this
    this.host = host
    /** metrics: what this connection sends and takes (lib/metrics), null when the runtime has none. */
    this.meter = createTransportMeter(host._runtime._metrics, this)
    const urls = serverUrls(options.servers)
    /** The server URLs as messages show them: a password or token as `***`. */
    this.servers = urls.shown
    this.heartbeat = options.heartbeat ?? 1000
    /** This runtime's id prefix: the events it sends are `<rt>-<seq>`. */
    this.rt = host.prefix.slice(0, -1)
    /**
     * Where other runtimes reach this one: its frames' subject is `happen.rt.<route>`, and
     * presence and replies name it by this. With a `scope`, `<scope>.<rt>`, so that a NATS
     * permission on `happen.rt.<scope>.>` can confine the process to its own frames.
     */
    this.route = options.scope === undefined ? this.rt : `${options.scope}.${this.rt}`
    /**
     * Where replies come: `_HAPPEN.<route>.<secret>.`, the secret 128 random bits that only the
     * processes this one sends requests to ever see (presence never carries it), so a client
     * that cannot read those requests cannot answer in their stead (see wire.js inboxOf).
     */
    this.inbox = `_HAPPEN.${this.route}.${randomBytes(16).toString('base64url')}.`
    /** The inbound messages refused (inbound.js): counted, logged, warned about at most once a minute. */
    this.drops = new Drops()
    /** What other runtimes may make this one hold (limits.js). */
    this.limits = { ...DEFAULT_LIMITS, ...options.limits }
    /** Which runtime hosts a remote node id (learnt from presence and replies). */
    this.hostOf = new RemoteHosts()
    /** Handles of remote nodes known only as the senders of events served here. */
    this.senders = new SenderHandles(this.limits.senders, (node) => host.dropHandle(node))
    /** Peer runtimes whose id prefix the core interned (at most limits.peers). */
    this.interned = 0
    /** When each remote runtime last replied (performance.now()): fan frames name only these. */
    this.heardAt = new Map()
    /** This turn's frames, by destination runtime, and replies, by destination inbox. */
    this.frames = new TurnTable()
    this.replies = new TurnTable()
    this.nextFrame = 1
    /** Remote branches waiting for their reply, by branch id. */
    this.waiting = new BranchTable()
    /**
     * The bound on what waits for replies: past `maxInFlight` branches or `maxInFlightBytes`
     * (the events' JSON, each send's shared among its branches), sends are held back, in order
     * (`held`, from `heldFrom` on), until replies free room (requests.js _holdBack).
     */
    this.maxInFlight = options.maxInFlight ?? MAX_IN_FLIGHT
    this.maxInFlightBytes = options.maxInFlightBytes ?? MAX_IN_FLIGHT_BYTES
    this.inFlightBytes = 0
    this.held = []
    this.heldFrom = 0
    /** Set once close() began: nothing held back leaves any more. */
    this.closing = false
    /** Inbound flows running here, by the sender's inbox: a BranchTable of its branch ids (for liveness checks). */
    this.serving = new Map()
    /** The runtimes events came from, by inbox (see serving.js _peer). */
    this.peers = new Map()
    /** Inbound flows that ended this turn: answer, slot, answer, slot… */
    this.answers = []
    this.remotes = new Map()
    /** Local nodes asking whether a live process hosts their id already, by check key. */
    this.claims = new Map()
    /** Remote ids whose host is being asked after (see presence.js _check). */
    this.checking = new Set()
    /** When each local node claimed its id (ms since epoch): of two claims the earlier keeps it. */
    this.claimedAt = new Map()
    /** Local nodes whose first announcement has not come back yet, by id. */
    this.echoes = new Map()
    /**
     * What ready() has not reported yet: DUPLICATE_NODE refusals of local nodes, and
     * PERMISSION_DENIED for what the server's permissions refused (see permissions.js).
     */
    this.refused = []
    /** Subjects the server refused this process to publish to, with the error sends there get. */
    this.denied = new Map()
    /** Whether the server refused this runtime happen.fan: it takes no fan frames. */
    this.fanDenied = false
    this.subscriptions = new Map()
    /** Local node ids by the subject they listen on. */
    this.localBySubject = new Map()
    this.flushes = new Map()
    this.pings = new Map()
    this.nextToken = 1
    /**
     * Reply messages sent lately. A reply the server lost (it restarted) is sent again when its
     * requester asks after it, and its request, sent again, is not run twice. Kept for
     * `retention` ms; from a disconnection until `recovering` has passed, everything since the
     * disconnection is kept (see _trimKept).
     */
    this.kept = new KeptReplies()
    this.retention = Math.max(1000, this.heartbeat)
    this.disconnectedAt = -1
    this.recovering = -Infinity
    /** Reconnections so far: a request sent before one may have been lost with the old connection. */
    this.reconnections = 0
    /** Connections made so far ('reconnected' reports each, the first one too, before or after 'connected'). */
    this.connections = 0
    /** Until then (after a reconnection), a process that does not answer may not be back yet. */
    this.graceUntil = -Infinity
    /** Outbound messages of this turn: subject, reply, header, body (see nats_send). */
    this.out = []
    this.scheduled = false
    this._sendNow = () => {
      this.scheduled = false
      if (this.answers.length > 0) this._answerFinished()
      if (this.frames.size > 0) this._sendFrames()
      if (this.replies.size > 0) {
        for (const [inbox, list] of this.replies) this._sendReplies(inbox, list)
        this.replies.clear()
      }
      if (this.out.length === 0) return
      if (this.failure !== null) return void (this.out = [])
      const out = this.out
      this.out = []
      try {
        native.natsSend(this.handle, out)
        if (this.meter !== null) this.meter.sent(out) // metrics
      } catch (error) {
        // The connection's task has ended (it only does when closed, and close() sends no
        // more): nothing will leave or arrive, so nothing waits on it in silence.
        debug.logTransport('nats', 'the connection refused %d messages: %s', out.length / 4, error.message)
        this._fail(`the NATS connection stopped: ${error.message}`)
      }
    }
    /**
     * Remote branches' steps, recorded in the core only when a trace is asked for (traces are
     * rare, replies are not); the oldest go first past a bound the history cannot outlive.
     */
    const limit = Math.min(4 * historySize, 1_000_000)
    this.steps = { branches: new Float64Array(limit), names: new Array(limit), next: 0, count: 0 }
    /**
     * The step list the ring holds last. Remote flows mostly run the same steps: an equal list
     * that arrives is not kept itself, so the ring (long-lived) holds few distinct lists rather
     * than one young one per reply that every scavenge must follow and promote.
     */
    this.lastSteps = []
    this.state = 'connecting'
    /** The server's largest message (its INFO says; 1 MiB until connected). */
    this.maxPayload = 1024 * 1024
    this.messageLimit = this._messageLimit()
    this.failure = null
    this.closed = false
    this.holds = 1
    // Keeps the process alive while something waits on the network (connecting, replies,
    // flushes), never when idle: unref'd whenever `holds` is 0.
    this.timer = setInterval(() => this._checkLiveness(), Math.max(50, this.heartbeat / 2))
    const { heartbeat, type, frames, fan, scope, limits, servers, maxInFlight, maxInFlightBytes, ...connect } = options
    /** `frames: false` sends every request on its node's subject (for comparison and tests). */
    this.useFrames = frames !== false
    /**
     * `fan: true` sends a turn's frames for several runtimes as one fan frame. Off by default: it
     * measured no faster than a frame per runtime (the publishes of a turn already leave in one
     * native call) and every runtime receives every fan frame. Every runtime listens on FAN
     * whatever its own setting, so a sender may choose it alone.
     */
    this.useFan = this.useFrames && fan === true
    /**
     * What the connection queued and a slice of _drain left for the next (entries from
     * `inboundAt` on), and the rest of a frame cut short (serving.js), which goes first.
     */
    this.inbound = null
    this.inboundAt = 0
    this.resume = null
    /** Whether the next slice is scheduled, and when the current one ends (performance.now()). */
    this.sliced = false
    this.sliceEnd = Infinity
    this._nextSlice = () => this._drainSlice(true)
    // The connection gets the URLs without credentials (its messages name them so: see
    // _onStatus), and those the URLs carried as options.
    this.addresses = urls.addresses.join(', ')
    this.handle = native.natsConnect({ ...connect, ...urls.credentials, servers: urls.addresses }, () => this._drain())
    this.connected = new Promise((resolve, reject) => {
      this._connected = resolve
      this._failed = reject
    })
    this.connected.catch(() => {})
    native.natsSubscribe(this.handle, `${this.inbox}*`, 'r')
    native.natsSubscribe(this.handle, PRESENCE, 'p')
    native.natsSubscribe(this.handle, `happen.rt.${this.route}`, 'f')
    native.natsSubscribe(this.handle, FAN, 'f')
    this._out(PRESENCE, '', '', JSON.stringify({ hello: true, rt: this.route }))
  }

  _hold(n) {
    const before = this.holds
    this.holds += n
    if (before === 0 && this.holds > 0) this.timer.ref()
    else if (before > 0 && this.holds === 0) this.timer.unref()
  }

  /**
   * Resolves once connected, every node created so far has claimed its id, and everything sent
   * so far (subscriptions of new nodes too) reached the server; rejects with DUPLICATE_NODE when
   * a node created since the last call was refused its id (a live process hosts it).
   */
  ready() {
    if (this.closed) return Promise.resolve()
    return this.connected
      .then(() => this._claimsSettled())
      .then(() => this._flushConnection())
      .then(() => this._claimsSettled())
      .then(() => {
        if (this.failure !== null) throw this.failure
        if (this.refused.length === 0) return
        const refused = this.refused
        this.refused = []
        if (refused.length === 1) throw refused[0]
        const code = refused.every((error) => error.code === refused[0].code) ? refused[0].code : 'PERMISSION_DENIED'
        throw new HappenError(code, refused.map((error) => error.message).join('; '), { errors: refused })
      })
  }

  /**
   * Resolves once no claim, check or first announcement is pending, those that one settling
   * started included (an announcement that meets another claim confirms it: presence.js
   * _conflict). Each ends within a heartbeat.
   */
  _claimsSettled() {
    if (this.claims.size === 0 && this.echoes.size === 0) return undefined
    const pending = [...this.claims.values(), ...this.echoes.values()].map((wait) => wait.settled)
    return Promise.all(pending).then(() => this._claimsSettled())
  }

  /** Resolves once everything sent so far reached the server. */
  _flushConnection() {
    return new Promise((resolve, reject) => {
      const token = String(this.nextToken++)
      this.flushes.set(token, { resolve, reject })
      this._hold(1)
      this._sendNow()
      native.natsFlush(this.handle, token)
    })
  }

  /** Throws when sends to remote nodes cannot work (the connection failed or was closed). */
  assertUsable() {
    if (this.failure !== null) throw this.failure
  }

  /**
   * Serialises a send for the wire before anything is dispatched (so a payload JSON cannot
   * carry refuses the whole send). Returns the body text.
   */
  encode(input) {
    this.assertUsable()
    return this._fits(this._encode(input), input)
  }

  _encode(input) {
    if (!Array.isArray(input)) {
      checkJson(input.payload, 'payload', () => `The payload of '${input.type}'`)
      return JSON.stringify({ type: input.type, payload: input.payload })
    }
    const events = new Array(input.length)
    for (let i = 0; i < input.length; i++) {
      const { type, payload } = input[i]
      checkJson(payload, `events[${i}].payload`, () => 'The batch')
      events[i] = { type, payload }
    }
    return JSON.stringify(events)
  }

  /** Refuses (PAYLOAD_TOO_LARGE) what the server would refuse: a message above its max_payload. */
  _fits(body, input) {
    // Bytes, not UTF-16 units; the causal header takes a few hundred more.
    const size = body.length < this.maxPayload / 3 ? body.length : Buffer.byteLength(body)
    if (size + 1024 > this.maxPayload) {
      const what = Array.isArray(input) ? `The batch of ${input.length} events` : `The event '${input.type}'`
      throw new HappenError(
        'PAYLOAD_TOO_LARGE',
        `${what} is ${size} bytes as JSON: more than the NATS server takes in one message (max_payload ${this.maxPayload} bytes)`,
      )
    }
    return body
  }

  /** Queues a message; everything queued in one turn of the event loop leaves in one call. */
  _out(subject, reply, header, body) {
    this.out.push(subject, reply, header, body)
    this._schedule()
  }

  /** Sends what this turn queued once the turn's synchronous code and promise jobs are done. */
  _schedule() {
    if (this.scheduled || this.closed) return
    this.scheduled = true
    process.nextTick(this._sendNow)
  }

  /**
   * Takes what the connection queued (many messages per call when they queue up) and handles it
   * in order, in slices of about SLICE_MS: past one, the rest waits for the next turn of the
   * event loop (setImmediate), so the process's timers, I/O and other work keep answering while
   * a backlog is served. A wake-up while a slice is scheduled adds nothing: that slice takes
   * everything that arrived, after what it has left.
   */
  _drain() {
    if (this.closed || this.sliced) return
    this._drainSlice(false)
  }

  /** One slice of _drain; `resumed`: the one after a slice that ran out of time. */
  _drainSlice(resumed) {
    this.sliced = false
    if (this.closed) return
    this.sliceEnd = performance.now() + SLICE_MS
    if (this.resume !== null && !this._resumeFrame()) return this._sliceLater()
    let entries = this.inbound
    let i = this.inboundAt
    this.inbound = null
    for (;;) {
      if (entries === null) {
        try {
          entries = native.natsDrain(this.handle)
        } catch {
          return
        }
        if (this.meter !== null) this.meter.consumed(entries) // metrics
        i = 0
        if (entries.length === 0) return
      }
      while (i < entries.length) {
        this._handle(entries, i)
        i += 5
        if (this.resume !== null || (i < entries.length && performance.now() >= this.sliceEnd)) {
          if (i < entries.length) {
            this.inbound = entries
            this.inboundAt = i
          }
          return this._sliceLater()
        }
      }
      // A wake-up that came while slices were scheduled was not answered: what it announced is taken now.
      if (!resumed) return
      entries = null
    }
  }

  /** Serves the rest of the frame a slice cut short; false when this slice cut it again. */
  _resumeFrame() {
    const resume = this.resume
    this.resume = null
    try {
      resume()
    } catch (error) {
      this._unhandled(error)
    }
    return this.resume === null
  }

  _sliceLater() {
    this.sliced = true
    setImmediate(this._nextSlice)
  }

  /** Whether the current slice of _drain has run its time (serving.js cuts a frame short then). */
  _sliceOver() {
    return performance.now() >= this.sliceEnd
  }

  /** Handles the message at entries[i] (kind, subject, reply, header, body). */
  _handle(entries, i) {
    const kind = entries[i]
    try {
      if (kind === 'r') this._onReply(entries[i + 1], entries[i + 3], entries[i + 4])
      else if (kind === 'f') this._onFrame(entries[i + 2], entries[i + 3], entries[i + 4], entries[i + 1])
      else if (kind === 'q') this._onRequest(entries[i + 1], entries[i + 2], entries[i + 3], entries[i + 4])
      else if (kind === 'p') this._onPresence(entries[i + 4])
      else if (kind === 's') this._onStatus(entries[i + 1], entries[i + 4])
      else if (kind === 'e') this._onUnsent(entries[i + 1], entries[i + 2], entries[i + 3], entries[i + 4])
    } catch (error) {
      this._unhandled(error)
    }
  }

  /** A malformed message must not stop the others: it is reported, not thrown. */
  _unhandled(error) {
    this.drops.drop('message', '(any)', null, `it could not be handled: ${error?.message}`, false)
  }

  /**
   * The connection cannot carry anything (it could not be made, or its task ended, or the
   * server's permissions refuse what it needs): the remote branches waiting fail with
   * CONNECTION_FAILED (or the error `problem` gives), and so does every later send.
   */
  _fail(problem) {
    if (this.failure !== null) return
    this.state = 'failed'
    this.failure = typeof problem === 'string' ? new HappenError('CONNECTION_FAILED', problem) : problem
    this._failed(this.failure)
    const { code, message } = this.failure
    this._refuseHeld(code, message)
    for (const branch of [...this.waiting.keys()]) this._failBranch(branch, code, message)
    for (const claim of this.claims.values()) claim.granted()
    this.claims.clear()
    for (const id of [...this.echoes.keys()]) this._heard(id)
    for (const [token, flush] of this.flushes) {
      this.flushes.delete(token)
      this._hold(-1)
      flush.reject(this.failure)
    }
  }

  _onStatus(event, detail) {
    // A failure names the servers as the connection has them: they are named as configured, redacted.
    if (event === 'failed') detail = detail.replace(this.addresses, () => this.servers.join(', '))
    if (debug.enabled && !event.startsWith('flush')) debug.logTransport('nats', '%s %s', event, redactInboxes(detail))
    if (event === 'connected') {
      this.state = 'connected'
      const max = Number(detail)
      if (max > 0) this.maxPayload = max
      this.messageLimit = this._messageLimit()
      const now = performance.now()
      for (const claim of this.claims.values()) claim.sentAt = now
      this._hold(-1)
      this._connected()
    } else if (event === 'denied') {
      this._onDenied(detail)
    } else if (event === 'failed') {
      this._hold(-1)
      this._fail(detail)
    } else if (event === 'flushed' || event === 'flush-failed') {
      const token = event === 'flushed' ? detail : detail.split(' ')[0]
      const flush = this.flushes.get(token)
      if (flush === undefined) return
      this.flushes.delete(token)
      this._hold(-1)
      if (event === 'flushed') flush.resolve()
      else flush.reject(new HappenError('CONNECTION_FAILED', `NATS flush failed: ${detail}`))
    } else if (event === 'disconnected' && this.state === 'connected') {
      if (this.disconnectedAt < 0) this.disconnectedAt = performance.now()
    } else if (event === 'reconnected' && ++this.connections > 1 && this.state === 'connected') {
      // Whatever was in flight while the server was away may be lost, liveness pings and their
      // answers included: check everything again at once. The other processes reconnect too,
      // each in its own time: one that does not answer yet is asked again for a while.
      const now = performance.now()
      this.reconnections++
      this.graceUntil = now + Math.max(3000, 3 * this.heartbeat)
      this.recovering = now + Math.max(10_000, 10 * this.heartbeat)
      for (const waiting of this.waiting.values()) {
        waiting.sentAt = -Infinity
        waiting.pinged = false
      }
      this.pings.clear()
      // A new connection may come with other permissions.
      this.denied.clear()
      this._out(PRESENCE, '', '', JSON.stringify({ hello: true, rt: this.route }))
    }
  }

  async close() {
    if (this.closed) return
    // What is held back never leaves: its sends fail SHUTDOWN (now, and any made meanwhile below).
    this.closing = true
    this._refuseHeld('SHUTDOWN', 'the happen runtime was shut down')
    if (this.state === 'connected') {
      if (this.subscriptions.size > 0) this._announceDown([...this.subscriptions.keys()])
      await this._flushConnection().catch(() => {})
    }
    for (const claim of this.claims.values()) claim.granted()
    this.claims.clear()
    for (const id of [...this.echoes.keys()]) this._heard(id)
    this._refuseHeld('SHUTDOWN', 'the happen runtime was shut down')
    for (const branch of [...this.waiting.keys()])
      this._failBranch(branch, 'SHUTDOWN', 'the happen runtime was shut down before the remote node answered')
    this.closed = true
    clearInterval(this.timer)
    this._sendNow()
    native.natsClose(this.handle)
    if (this.meter !== null) this.meter.close() // metrics
  }
}

NatsTransport.prototype.type = 'nats'
NatsTransport.prototype.place = 'another process'
for (const part of [Presence, Requests, Serving, Liveness, Permissions]) {
  for (const name of Object.getOwnPropertyNames(part.prototype)) {
    if (name !== 'constructor') NatsTransport.prototype[name] = part.prototype[name]
  }
}

module.exports = { NatsTransport }
