'use strict'

// The NATS transport: nodes in other processes addressed by id like local ones.
//
// Wire (see src/nats.rs for the connection itself). <rt> is a runtime's id prefix.
//   happen.node.<id>   one subscription per local node. A request carries the event (JSON body)
//                      and its causal context (header `happen-causal`, JSON); its reply subject
//                      `_HAPPEN.<rt>.<branch>` names the sender's branch. No node there: the
//                      server answers "no responders" (NO_RESPONDERS). Without a causal header:
//                      a liveness check of long-running remote branches.
//   happen.rt.<rt>     frames: once the sender knows which runtime hosts a node (from presence
//                      or an earlier reply), everything it sends that runtime in one turn of its
//                      event loop travels in frames (as few as fit the server's max_payload,
//                      headers included: see messageLimit): the causal contexts as a JSON array
//                      in the header, the entries [node ids, branch ids, event(s)] in the body.
//                      Without a header: a liveness check of branches framed there (it follows
//                      their requests on the same subject, so it never overtakes them).
//                      A frame whose runtime is gone, or an entry whose node moved, is resent
//                      through happen.node.<id>.
//   _HAPPEN.<rt>.*     this runtime's replies, gathered per turn and split like frames: `.f` carries
//                      {h: replying runtime, r: [[branch, 1, steps, value] | [branch, 0, steps,
//                      {message, code, name}, step, retry], …]}; `.x<frame>` and `.<branch>`
//                      only ever get the server's "no responders"; `.p<n>` answers liveness checks.
//   happen.presence    who hosts which node ids, so broadcast reaches every node.

const { debuglog } = require('node:util')
const native = require('./native')
const { HappenError } = require('./errors')
const { performance } = require('node:perf_hooks')

const PRESENCE = 'happen.presence'
/** Characters of one outbound frame of requests or replies at most (see messageLimit). */
const FRAME_LIMIT = 512 * 1024
/** What the transport could not send, and why (`NODE_DEBUG=happen`). */
const debug = debuglog('happen')
/** Entries of a frame served before the replies so far leave (the sender can start on them). */
const REPLY_EVERY = 16



/** `happen.node.<id>`: ids made of subject-safe tokens go as they are, others base64url-encoded. */
function subjectOf(id) {
  return /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(id)
    ? `happen.node.${id}`
    : `happen.node.~${Buffer.from(id).toString('base64url')}`
}

/** What JSON cannot carry faithfully, named by its path (`payload.user.callback`). */
function unserialisable(value, path, seen) {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'undefined':
      return null
    case 'bigint':
      return `${path} is a BigInt`
    case 'symbol':
      return `${path} is a Symbol`
    case 'function':
      return `${path} is a function${value.name ? ` (${value.name})` : ''}`
  }
  if (value === null) return null
  if (typeof value.toJSON === 'function') return null
  if (seen.includes(value)) return `${path} refers back to one of its parents (a cycle)`
  if (value instanceof Map || value instanceof Set || value instanceof WeakMap || value instanceof WeakSet || value instanceof Promise) {
    return `${path} is a ${value.constructor.name}, which JSON cannot carry`
  }
  seen.push(value)
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const problem = unserialisable(value[i], `${path}[${i}]`, seen)
        if (problem !== null) return problem
      }
      return null
    }
    for (const key of Object.keys(value)) {
      const problem = unserialisable(value[key], /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`, seen)
      if (problem !== null) return problem
    }
    return null
  } finally {
    seen.pop()
  }
}

/** Whether JSON carries `value` faithfully; a quick walk that builds no paths. */
function plainJson(value, depth) {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'undefined':
      return true
    case 'object':
      break
    default:
      return false
  }
  if (value === null) return true
  if (depth > 64) return false // deep or cyclic: the slow walk decides
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!plainJson(value[i], depth + 1)) return false
    return true
  }
  if (typeof value.toJSON === 'function') return true
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null && (value instanceof Map || value instanceof Set || value instanceof WeakMap || value instanceof WeakSet || value instanceof Promise)) return false
  for (const key in value) {
    if (Object.prototype.hasOwnProperty.call(value, key) && !plainJson(value[key], depth + 1)) return false
  }
  return true
}

/** Throws a HappenError NOT_SERIALIZABLE naming the field when JSON cannot carry `value`. */
function checkJson(value, path, what) {
  if (plainJson(value, 0)) return
  const problem = unserialisable(value, path, [])
  if (problem !== null) throw new HappenError('NOT_SERIALIZABLE', `${what} cannot be sent over NATS: ${problem}`)
}

/** An error that crossed the wire: its message, code and name as the remote flow threw them. */
function remoteError(node, described) {
  const { message, code, name } = described || {}
  const error = name === 'HappenError' ? new HappenError(code, message) : new Error(message)
  if (name && name !== 'HappenError') error.name = name
  if (code !== undefined && code !== null) error.code = code
  error.node = node
  return error
}

function describeError(error) {
  if (error instanceof Error) return { message: error.message, code: error.code ?? null, name: error.name }
  return { message: typeof error === 'string' ? error : `non-Error value thrown: ${String(error)}`, code: null, name: 'Error' }
}

/** The causal contexts of a batch that came over the wire (what BatchInfo gives locally). */
class WireBatch {
  constructor(events, first, ids) {
    this.count = events.length
    this.events = events
    this.first = first
    this.timestamp = first.timestamp
    this._ids = ids
  }

  causalAt(index) {
    const [id, causationId, correlationId] = this._ids[index]
    const first = this.first
    return { id, sender: first.sender, causationId, correlationId, path: first.path, timestamp: first.timestamp }
  }
}

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
    this.servers = options.servers
    this.heartbeat = options.heartbeat ?? 1000
    this.rt = host.prefix.slice(0, -1)
    this.inbox = `_HAPPEN.${this.rt}.`
    /** Which runtime hosts a remote node id (learnt from presence and replies). */
    this.hostOf = new Map()
    /** This turn's frames, by destination runtime, and replies, by destination inbox. */
    this.frames = new Map()
    this.replies = new Map()
    this.nextFrame = 1
    /** Remote branches waiting for their reply, by branch id. */
    this.waiting = new Map()
    /** Inbound flows running here, by the sender's inbox: its branch ids (for liveness checks). */
    this.serving = new Map()
    /** Inbound flows that ended this turn: answer, slot, answer, slot… */
    this.answers = []
    this.remotes = new Map()
    /** Local nodes asking whether a live process hosts their id already, by check key. */
    this.claims = new Map()
    /** When each local node claimed its id (ms since epoch): of two claims the earlier keeps it. */
    this.claimedAt = new Map()
    /** Local nodes whose first announcement has not come back yet, by id. */
    this.echoes = new Map()
    /** DUPLICATE_NODE refusals of local nodes that ready() has not reported yet. */
    this.refused = []
    this.subscriptions = new Map()
    /** Local node ids by the subject they listen on. */
    this.localBySubject = new Map()
    this.flushes = new Map()
    this.pings = new Map()
    this.nextToken = 1
    /** Outbound messages of this turn: subject, reply, header, body (see nats_send). */
    this.out = []
    this.scheduled = false
    this._sendNow = () => {
      this.scheduled = false
      if (this.answers.length > 0) this._answerFinished()
      if (this.frames.size > 0) for (const [host, frame] of this.frames) this._sendFrame(host, frame)
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
      } catch {}
    }
    /**
     * Remote branches' steps, recorded in the core only when a trace is asked for (traces are
     * rare, replies are not); the oldest go first past a bound the history cannot outlive.
     */
    const limit = Math.min(4 * historySize, 1_000_000)
    this.steps = { branches: new Float64Array(limit), names: new Array(limit), next: 0, count: 0 }
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
    const { heartbeat, type, frames, ...connect } = options
    /** `frames: false` sends every request on its node's subject (for comparison and tests). */
    this.useFrames = frames !== false
    this.handle = native.natsConnect(connect, () => this._drain())
    this.connected = new Promise((resolve, reject) => {
      this._connected = resolve
      this._failed = reject
    })
    this.connected.catch(() => {})
    native.natsSubscribe(this.handle, this.inbox + '*', 'r')
    native.natsSubscribe(this.handle, PRESENCE, 'p')
    native.natsSubscribe(this.handle, `happen.rt.${this.rt}`, 'f')
    this._out(PRESENCE, '', '', JSON.stringify({ hello: this.inbox }))
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
      .then(() => (this.claims.size === 0 ? undefined : Promise.all([...this.claims.values()].map((claim) => claim.settled))))
      .then(() => (this.echoes.size === 0 ? undefined : Promise.all([...this.echoes.values()].map((echo) => echo.settled))))
      .then(() => this._flushConnection())
      .then(() => {
        if (this.refused.length === 0) return
        const refused = this.refused
        this.refused = []
        throw refused.length === 1
          ? refused[0]
          : new HappenError('DUPLICATE_NODE', refused.map((error) => error.message).join('; '), { errors: refused })
      })
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

  // --- nodes ------------------------------------------------------------------------------

  /**
   * A local node is about to be created with this id. Node ids are unique across the processes
   * of one deployment: when this process knows (from presence or a reply) that a live process
   * hosts the id, it throws DUPLICATE_NODE; a remote handle of an id nobody is known to host is
   * forgotten (the node moved here). What it knows may be stale (a host killed without a word):
   * the refusal also asks the node's subject, and a silence there forgets the id.
   */
  beforeCreate(id) {
    const remote = this.remotes.get(id)
    if (remote === undefined) return
    const host = this.hostOf.get(id)
    if (host === undefined) return this._forget(id, remote)
    this._check(id, null)
    throw new HappenError(
      'DUPLICATE_NODE',
      `Cannot create node '${id}': another process (happen runtime ${host}) hosts a node with this id on NATS; node ids are unique across the processes of one NATS deployment`,
    )
  }

  /** Drops a remote handle: out of the core and of broadcasts; a held handle now says DISPOSED. */
  _forget(id, node) {
    this.remotes.delete(id)
    this.hostOf.delete(id)
    this.host.dropHandle(node)
  }

  /**
   * A local node claims its id before it listens on its subject: it asks the subject whether a
   * live process answers there. No responders: the id is free, the node subscribes and is
   * announced. An answer: the node is refused (disposed here; ready() rejects DUPLICATE_NODE)
   * and the first host keeps it. Two processes claiming at the same moment both hear "free";
   * their announcements then meet, and the later claim gives way (see _onPresence).
   */
  nodeCreated(node) {
    if (this.failure !== null) return
    this.claimedAt.set(node.id, Date.now())
    this._check(node.id, node)
  }

  /**
   * Asks `id`'s subject whether a live process serves it: for a local node's claim (`node`), or
   * to find out whether a host this process knows of still runs (`node` null).
   */
  _check(id, node) {
    const key = `c${this.nextToken++}`
    let granted
    const settled = new Promise((resolve) => (granted = resolve))
    this.claims.set(key, { id, node, sentAt: performance.now(), settled, granted })
    this._hold(1)
    this._out(subjectOf(id), this.inbox + key, '', JSON.stringify({ running: [] }))
  }

  /** The answer to a claim or a check: `answer` null when nobody serves the id (or nobody answered in time). */
  _onCheckAnswer(key, answer) {
    const claim = this.claims.get(key)
    if (claim === undefined) return
    this.claims.delete(key)
    this._hold(-1)
    const { id, node } = claim
    if (node === null) {
      // A host this process knew of: gone, or alive (and maybe another one than thought).
      const remote = this.remotes.get(id)
      if (answer === null) {
        if (remote !== undefined && this.host.localNode(id) === undefined) this._forget(id, remote)
      } else if (typeof answer.rt === 'string' && remote !== undefined && remote._index >= 0) {
        // (Unless presence said meanwhile that the host left: presence and answers may cross.)
        this.hostOf.set(id, answer.rt)
      }
      return claim.granted()
    }
    if (this.closed || this.host.localNode(id) !== node) return claim.granted()
    if (answer === null) this._listen(node)
    else this._refuse(node, typeof answer.rt === 'string' ? answer.rt : null)
    claim.granted()
  }

  /** The node's id is its own: it listens on its subject and is announced. */
  _listen(node) {
    const subject = subjectOf(node.id)
    this.localBySubject.set(subject, node.id)
    this._sendNow()
    this.subscriptions.set(node.id, native.natsSubscribe(this.handle, subject, 'q'))
    // ready() waits until this announcement comes back: a claim the server ordered before it
    // has arrived by then, and this node has given way (see _conflict).
    let heard
    const settled = new Promise((resolve) => (heard = resolve))
    this.echoes.set(node.id, { sentAt: performance.now(), settled, heard })
    this._hold(1)
    this._announce([node.id], true)
  }

  /** `first`: a node's first announcement (else one again, say for a process that said hello). */
  _announce(ids, first = false) {
    const at = ids.map((id) => this.claimedAt.get(id))
    this._out(PRESENCE, '', '', JSON.stringify({ up: ids, at, first, from: this.inbox, rt: this.rt }))
  }

  /** A node's first announcement came back (or will not: `id`'s wait ends anyway). */
  _heard(id) {
    const echo = this.echoes.get(id)
    if (echo === undefined) return
    this.echoes.delete(id)
    this._hold(-1)
    echo.heard()
  }

  /** A local node whose id a live process hosts: disposed here; the next ready() says so. */
  _refuse(node, host, late = false) {
    this._heard(node.id)
    const error = new HappenError(
      'DUPLICATE_NODE',
      `Node '${node.id}' was refused: another process${host === null ? '' : ` (happen runtime ${host})`} already hosts a node with this id on NATS, and keeps it; node ids are unique across the processes of one NATS deployment`,
    )
    debug('%s', error.message)
    this.refused.push(error)
    // A node that had already been announced gives way after ready() may have resolved.
    if (late) process.emitWarning(error.message, { code: 'DUPLICATE_NODE' })
    if (this.host.closed || node._index < 0) return
    try {
      node.dispose()
    } catch {}
  }

  nodeDisposed(node) {
    this.claimedAt.delete(node.id)
    this._heard(node.id)
    const sid = this.subscriptions.get(node.id)
    if (sid === undefined) return
    this.subscriptions.delete(node.id)
    this.localBySubject.delete(subjectOf(node.id))
    if (this.closed || this.failure !== null) return
    this._sendNow()
    native.natsUnsubscribe(this.handle, sid)
    this._out(PRESENCE, '', '', JSON.stringify({ down: [node.id], from: this.inbox, rt: this.rt }))
  }

  /** Any id that is not a local node's names a node of another process. */
  resolve(id) {
    return this.remoteNode(id)
  }

  /** The handle of a node of another process (made once per id). */
  remoteNode(id) {
    let node = this.remotes.get(id)
    if (node === undefined || node._index < 0) {
      node = this.host.createHandle(id)
      this.remotes.set(id, node)
    }
    return node
  }

  /** What a broadcast reaches here: every node other processes announced. */
  everyone() {
    const nodes = []
    for (const node of this.remotes.values()) if (node._listed === true && node._index >= 0) nodes.push(node)
    return nodes
  }


  // --- sending ----------------------------------------------------------------------------

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
      checkJson(input.payload, 'payload', `The payload of '${input.type}'`)
      return JSON.stringify({ type: input.type, payload: input.payload })
    }
    const events = new Array(input.length)
    for (let i = 0; i < input.length; i++) {
      const { type, payload } = input[i]
      checkJson(payload, `events[${i}].payload`, 'The batch')
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

  /** Sends the planned event to the remote targets of one dispatch; replies finish their branches. */
  start(delivery) {
    const { result, slots: remote, wire: body, causal, batch: info, origin, broadcast } = delivery
    const header = { ...causal }
    // A flow serving another runtime's branch: that runtime nests what it sends there.
    if (origin !== undefined) header.origin = origin
    if (info !== null) {
      header.batch = Array.from({ length: info.count }, (_, i) => {
        const c = i === 0 ? info.first : info.causalAt(i)
        return [c.id, c.causationId, c.correlationId]
      })
    }
    const causalText = JSON.stringify(header)
    const now = performance.now()
    let direct = null
    for (let i = 0; i < remote.length; i++) {
      const { slot, branch, node } = remote[i]
      const waiting = { result, slot, branch, node, sentAt: now, causal: causalText, body, frame: 0, host: null, pinged: false, broadcast }
      this.waiting.set(branch, waiting)
      const host = this.useFrames ? this.hostOf.get(node.id) : undefined
      if (host === undefined) (direct || (direct = [])).push(waiting)
      else this._frame(host, node.id, waiting)
    }
    this._hold(remote.length)
    if (direct !== null) for (let i = 0; i < direct.length; i++) this._direct(direct[i], i > 0)
  }

  /** Sends one branch's request on its node's subject. */
  _direct(waiting, sameBody) {
    waiting.frame = 0
    this._out(subjectOf(waiting.node.id), this.inbox + waiting.branch, waiting.causal, sameBody ? '\0' : waiting.body)
  }

  /**
   * How many characters one frame (of requests or of replies) may hold: at most 3 bytes of UTF-8
   * per UTF-16 unit, so a frame within it always fits the server's max_payload, headers included.
   */
  _messageLimit() {
    return Math.min(FRAME_LIMIT, Math.floor((this.maxPayload - 1024) / 3))
  }

  /**
   * Adds one branch's request to this turn's frame for runtime `host`. A frame that would grow
   * past messageLimit leaves first; one entry alone may exceed it (encode() bounds its body).
   */
  _frame(host, id, waiting) {
    let frame = this.frames.get(host)
    if (frame === undefined) frame = this._newFrame(host)
    waiting.host = host
    // Targets of one send on one runtime share an entry: one event, several nodes.
    const last = frame.last
    if (last !== null && last.causal === waiting.causal) {
      waiting.frame = frame.no
      last.ids.push(id)
      last.branches.push(waiting.branch)
      frame.size += id.length + 16
      return
    }
    const size = waiting.causal.length + waiting.body.length + id.length + 32
    if (frame.entries.length > 0 && frame.size + size > this.messageLimit) {
      this._sendFrame(host, frame)
      frame = this._newFrame(host)
    }
    waiting.frame = frame.no
    frame.causals.push(waiting.causal)
    frame.last = { causal: waiting.causal, body: waiting.body, ids: [id], branches: [waiting.branch] }
    frame.entries.push(frame.last)
    frame.size += size
  }

  _newFrame(host) {
    const frame = { no: this.nextFrame++, causals: [], entries: [], size: 0, last: null }
    this.frames.set(host, frame)
    this._schedule()
    return frame
  }

  _sendFrame(host, frame) {
    this.frames.delete(host)
    let body = '['
    for (let i = 0; i < frame.entries.length; i++) {
      const e = frame.entries[i]
      body += `${i === 0 ? '' : ','}[${JSON.stringify(e.ids)},[${e.branches.join(',')}],${e.body}]`
    }
    this.out.push(`happen.rt.${host}`, `${this.inbox}x${frame.no}`, `[${frame.causals.join(',')}]`, body + ']')
  }

  /**
   * Queues one reply for the runtime whose inbox is `inbox`; they leave together. Item:
   * `[branch, ok (1|0), steps JSON (0: as the item before), rest]`, rest being the value (none:
   * undefined) or `error, step[, retry]`.
   */
  _reply(inbox, branch, ok, steps, rest) {
    let list = this.replies.get(inbox)
    if (list === undefined) list = this._newReplies(inbox)
    let item = `[${branch},${ok},${steps === list.steps ? '0' : steps}${rest === '' ? '' : ','}${rest}]`
    // Replies split like requests: a message of them never exceeds the server's max_payload.
    if (list.length > 0 && list.size + item.length > this.messageLimit) {
      this._sendReplies(inbox, list)
      list = this._newReplies(inbox)
      item = `[${branch},${ok},${steps}${rest === '' ? '' : ','}${rest}]`
    }
    list.steps = steps
    list.size += item.length + 1
    list.push(item)
  }

  _newReplies(inbox) {
    const list = []
    list.steps = null
    list.size = 0
    this.replies.set(inbox, list)
    this._schedule()
    return list
  }

  /** One message of replies to the runtime whose inbox is `inbox`. */
  _sendReplies(inbox, list) {
    this.out.push(inbox + 'f', '', '', `{"h":${JSON.stringify(this.rt)},"r":[${list.join(',')}]}`)
  }

  /**
   * A remote branch's outcome: `ok`, the steps its flow ran, its value (ok) or error
   * ({message, code, name}), the failing step; `retry`: the runtime it was framed to does not
   * host the node (any more), so the node's subject is asked.
   */
  _settle(branch, ok, steps, payload, step, retry, host) {
    const waiting = this.waiting.get(branch)
    if (waiting === undefined) return
    if (retry === true) {
      this.hostOf.delete(waiting.node.id)
      return this._direct(waiting, false)
    }
    if (host !== undefined && waiting.frame === 0 && this.useFrames) this.hostOf.set(waiting.node.id, host)
    this.waiting.delete(branch)
    this._hold(-1)
    const { result, slot } = waiting
    const ran = steps !== undefined && steps.length > 0
    if (ran) {
      // A ring: past its size the oldest entries are overwritten.
      const ring = this.steps
      ring.branches[ring.next] = waiting.branch
      ring.names[ring.next] = steps
      ring.next = ring.next + 1 === ring.names.length ? 0 : ring.next + 1
      if (ring.count < ring.names.length) ring.count++
    }
    if (ok) result.settleTarget(slot, { ok: true, value: payload, matched: ran })
    else result.settleTarget(slot, { ok: false, step: step || '(remote)', error: remoteError(waiting.node.id, payload) })
  }


  /** Records the steps remote flows reported on their branches (called by runtime.trace()). */
  flushSteps() {
    const steps = this.steps
    if (steps.count === 0) return
    const size = steps.names.length
    const pairs = []
    for (let i = 0, at = (steps.next - steps.count + size) % size; i < steps.count; i++, at = at + 1 === size ? 0 : at + 1) {
      pairs.push(steps.branches[at], steps.names[at])
      steps.names[at] = undefined
    }
    steps.count = 0
    try {
      this.host.addSteps(JSON.stringify(pairs))
    } catch {}
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

  _failBranch(branch, code, message) {
    this._settle(branch, false, undefined, { name: 'HappenError', code, message }, '(transport)', false)
  }

  // --- inbound ----------------------------------------------------------------------------

  /** Takes what the connection queued (many messages per call when they queue up) and handles it in order. */
  _drain() {
    if (this.closed) return
    let entries
    try {
      entries = native.natsDrain(this.handle)
    } catch {
      return
    }
    for (let i = 0; i < entries.length; i += 5) {
      const kind = entries[i]
      try {
        if (kind === 'r') this._onReply(entries[i + 1], entries[i + 3], entries[i + 4])
        else if (kind === 'f') this._onFrame(entries[i + 2], entries[i + 3], entries[i + 4])
        else if (kind === 'q') this._onRequest(entries[i + 1], entries[i + 2], entries[i + 3], entries[i + 4])
        else if (kind === 'p') this._onPresence(entries[i + 4])
        else if (kind === 's') this._onStatus(entries[i + 1], entries[i + 4])
        else if (kind === 'e') this._onUnsent(entries[i + 1], entries[i + 2], entries[i + 3], entries[i + 4])
      } catch (error) {
        // A malformed message must not stop the others; it is reported, not thrown.
        process.emitWarning(`happen: a NATS message could not be handled: ${error && error.message}`)
      }
    }
  }

  _onReply(subject, header, body) {
    const key = subject.slice(this.inbox.length)
    const first = key.charCodeAt(0)
    if (first === 102 /* f: a frame of replies */) {
      // {h: replying runtime, r: [[branch, 1, steps, value?] | [branch, 0, steps, error, step, retry?], …]};
      // steps 0: the same as the item before.
      const { h: host, r: replies } = JSON.parse(body)
      let steps
      for (let i = 0; i < replies.length; i++) {
        const r = replies[i]
        if (r[2] !== 0) steps = r[2]
        if (r[1] === 1) this._settle(r[0], true, steps, r[3], undefined, false, host)
        else this._settle(r[0], false, steps, r[3], r[4], r[5] === 1, host)
      }
      return
    }
    if (first === 112 /* p: a liveness answer */) return this._onPingAnswer(key, header, body)
    if (first === 99 /* c: who serves an id */) return this._onCheckAnswer(key, header === 'status:503' ? null : JSON.parse(body))
    if (first === 120 /* x: a frame nobody took */) {
      // Its runtime is gone: resend its requests on their nodes' subjects, which tell
      // whether each node lives elsewhere now or nowhere (no responders).
      const no = Number(key.slice(1))
      for (const waiting of this.waiting.values()) {
        if (waiting.frame !== no) continue
        this.hostOf.delete(waiting.node.id)
        this._direct(waiting, false)
      }
      return
    }
    const branch = Number(key)
    if (header === 'status:503') {
      const waiting = this.waiting.get(branch)
      const id = waiting ? waiting.node.id : '?'
      // Not (or no longer) hosted anywhere: out of the broadcast list until announced again.
      if (waiting) {
        waiting.node._listed = false
        this.hostOf.delete(id)
        // A broadcast reaches the nodes that exist: one whose process went away without a
        // word (killed, or exited without shutdown()) answers like a node with no handler.
        if (waiting.broadcast) return this._settle(branch, true, undefined, null, undefined, false)
      }
      return this._failBranch(
        branch,
        'NO_RESPONDERS',
        `No node with id '${id}' answers on NATS: no process connected to ${this.servers.join(', ')} hosts it (no responders)`,
      )
    }
  }

  /** A request on a node's subject: one event (or batch) for one local node. */
  _onRequest(subject, reply, header, body) {
    if (header === '') return this._onPing(reply, body)
    const cut = reply.lastIndexOf('.') + 1
    const id = this.localBySubject.get(subject)
    this._serve(reply.slice(0, cut), [Number(reply.slice(cut))], [id], JSON.parse(header), JSON.parse(body), false)
  }

  /** A frame: entries [node ids, branch ids, event or batch], their causal contexts in the header; without one, a liveness check. */
  _onFrame(reply, header, body) {
    if (header === '') return this._onPing(reply, body)
    const inbox = reply.slice(0, reply.lastIndexOf('.') + 1)
    const causals = JSON.parse(header)
    const entries = JSON.parse(body)
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]
      this._serve(inbox, entry[1], entry[0], causals[i], entry[2], true)
      // A long frame: let the sender have the first answers while the rest are served.
      if (i % REPLY_EVERY === REPLY_EVERY - 1 && i + 1 < entries.length && this.answers.length > 0) this._sendNow()
    }
  }

  /**
   * Runs, for an event from another runtime, the flows of the local nodes `ids` (one dispatch,
   * like a local fan-out) and answers each node as soon as its flow ends; `branches[i]` is the
   * sender's branch for `ids[i]`.
   */
  _serve(inbox, branches, ids, wire, input, framed) {
    const host = this.host
    let nodes = ids.map((id) => (id === undefined ? undefined : host.localNode(id)))
    if (host.closed || nodes.includes(undefined)) {
      const error = (id) => ({ name: 'HappenError', code: 'NO_RESPONDERS', message: `Node '${id}' is no longer served by this process` })
      const keep = []
      nodes.forEach((node, i) => {
        // A frame's sender resends these on the node's subject (it may live elsewhere now).
        if (node === undefined || host.closed) this._reply(inbox, branches[i], 0, '[]', `${JSON.stringify(error(ids[i]))},"(transport)",${framed ? 1 : 0}`)
        else keep.push(i)
      })
      if (keep.length === 0) return
      nodes = keep.map((i) => nodes[i])
      branches = keep.map((i) => branches[i])
    }
    const causal = {
      id: wire.id,
      sender: wire.sender,
      causationId: wire.causationId,
      correlationId: wire.correlationId,
      path: wire.path,
      timestamp: wire.timestamp,
    }
    // Sent by a flow that serves one of this runtime's branches: caused by that branch.
    const origin = wire.origin
    const mine = origin !== undefined && origin[0] === this.rt && typeof causal.causationId === 'string' && causal.causationId.startsWith(host.prefix)
    const senderRt = inbox.slice(8, -1)
    let serving = this.serving.get(inbox)
    if (serving === undefined) this.serving.set(inbox, (serving = new Set()))
    for (const branch of branches) serving.add(branch)
    const answer = { result: null, nodes, inbox, branches, serving }
    let result
    try {
      result = host.receive({
        sender: wire.sender === null ? null : host.localNode(wire.sender) ?? this.remoteNode(wire.sender),
        nodes,
        input,
        causal,
        cause: mine ? { seq: Number(causal.causationId.slice(host.prefix.length)), branch: origin[1] } : null,
        batch: Array.isArray(input) ? new WireBatch(input, causal, wire.batch) : null,
        origins: branches.map((branch) => [senderRt, branch]),
        onTarget: (slot) => this._finished(answer, slot),
      })
    } catch (error) {
      for (const branch of branches) serving.delete(branch)
      if (serving.size === 0 && this.serving.get(inbox) === serving) this.serving.delete(inbox)
      const text = `${JSON.stringify(describeError(error))},"(delivery)"`
      for (const branch of branches) this._reply(inbox, branch, 0, '[]', text)
      return
    }
    answer.result = result
  }

  /** A served node's flow ended: its answer leaves with this turn's replies. */
  _finished(answer, slot) {
    answer.serving.delete(answer.branches[slot])
    // Peers come and go (each process has its own inbox): drop a peer's empty set.
    if (answer.serving.size === 0 && this.serving.get(answer.inbox) === answer.serving) this.serving.delete(answer.inbox)
    this.answers.push(answer, slot)
    this._schedule()
  }

  /** Builds the replies of the flows that ended this turn (steps fetched once per delivery). */
  _answerFinished() {
    const list = this.answers
    this.answers = []
    // Steps the flows ran are in the runtime's journal until it reaches the core.
    this.host.flushJournal()
    let last = null
    let steps = null
    for (let i = 0; i < list.length; i += 2) {
      const answer = list[i]
      const slot = list[i + 1]
      const result = answer.result
      if (answer !== last) {
        last = answer
        steps = this.host.stepsOf(result)
      }
      const stepsText = steps[slot]
      const node = answer.nodes[slot]
      const outcome = result.outcome(slot)
      const branch = answer.branches[slot]
      if (outcome.ok) {
        const value = outcome.value
        let text
        try {
          checkJson(value, 'result', `The result of node '${node.id}'`)
          text = JSON.stringify(value)
          if (text !== undefined && text.length > this.messageLimit) this._fitsReply(text, node.id)
        } catch (error) {
          debug('the result of node %s cannot be sent to %s: %s', node.id, answer.inbox, error.message)
          this._reply(answer.inbox, branch, 0, stepsText, `${JSON.stringify(describeError(error))},"(reply)"`)
          continue
        }
        this._reply(answer.inbox, branch, 1, stepsText, text === undefined ? '' : text)
      } else {
        this._reply(answer.inbox, branch, 0, stepsText, `${JSON.stringify(describeError(outcome.error))},${JSON.stringify(outcome.step)}`)
      }
    }
  }

  /** Throws PAYLOAD_TOO_LARGE for a result the server would refuse in one message. */
  _fitsReply(text, id) {
    const size = Buffer.byteLength(text)
    if (size + 1024 <= this.maxPayload) return
    throw new HappenError(
      'PAYLOAD_TOO_LARGE',
      `The result of node '${id}' is ${size} bytes as JSON: more than the NATS server takes in one message (max_payload ${this.maxPayload} bytes)`,
    )
  }

  /**
   * A message the connection could not publish (`code`: PAYLOAD_TOO_LARGE or CONNECTION_FAILED).
   * Nothing it carried is dropped without a word: a frame of requests too large is resent one
   * request per message; a request that cannot leave fails its branch with the code; a frame of
   * replies too large answers each of its branches with the error instead (small, so it leaves).
   * Replies lost with the connection are found by the requester's liveness check.
   */
  _onUnsent(subject, reply, reason, body) {
    const cut = reason.indexOf(' ')
    const code = reason.slice(0, cut)
    const why = reason.slice(cut + 1)
    debug('could not publish to %s (reply %s): %s', subject, reply || '-', reason)
    if (reply.startsWith(this.inbox)) {
      const key = reply.slice(this.inbox.length)
      if (key.charCodeAt(0) === 120 /* x: a frame of requests */) {
        const no = Number(key.slice(1))
        for (const [branch, waiting] of [...this.waiting]) {
          if (waiting.frame !== no) continue
          if (code === 'PAYLOAD_TOO_LARGE') this._direct(waiting, false)
          else this._failUnsent(branch, waiting, code, why)
        }
      } else if (key.charCodeAt(0) === 112 /* p: a liveness check, asked again next time */) {
        const branches = this.pings.get(key)
        this.pings.delete(key)
        if (branches !== undefined) for (const branch of branches) if (this.waiting.has(branch)) this.waiting.get(branch).pinged = false
      } else {
        const branch = Number(key)
        const waiting = this.waiting.get(branch)
        if (waiting !== undefined) this._failUnsent(branch, waiting, code, why)
      }
      return
    }
    if (code === 'PAYLOAD_TOO_LARGE' && subject.startsWith('_HAPPEN.') && subject.endsWith('.f')) {
      const inbox = subject.slice(0, -1)
      const error = JSON.stringify({ name: 'HappenError', code, message: `The reply could not be sent over NATS: ${why}` })
      for (const item of JSON.parse(body).r) this._reply(inbox, item[0], 0, '[]', `${error},"(reply)"`)
    }
  }

  _failUnsent(branch, waiting, code, why) {
    this._failBranch(branch, code, `The event could not be sent to node '${waiting.node.id}' over NATS: ${why}`)
  }

  _onPresence(body) {
    const message = JSON.parse(body)
    if (message.from === this.inbox) {
      if (message.first === true) for (const id of message.up) this._heard(id)
      return
    }
    if (message.hello !== undefined) {
      if (message.hello === this.inbox || this.subscriptions.size === 0) return
      this._announce([...this.subscriptions.keys()])
      return
    }
    const up = message.up || []
    for (let i = 0; i < up.length; i++) {
      const id = up[i]
      const mine = this.host.localNode(id)
      if (mine !== undefined) {
        if (this.subscriptions.has(id) && message.rt !== undefined) this._conflict(mine, message, i)
        continue
      }
      this.remoteNode(id)._listed = true
      if (message.rt !== undefined) this.hostOf.set(id, message.rt)
    }
    for (const id of message.down || []) {
      const node = this.remotes.get(id)
      if (node === undefined || this.hostOf.get(id) !== message.rt) continue
      this._forget(id, node)
    }
  }

  /**
   * Another runtime announced an id a node here serves: both claimed it at about the same moment
   * (or a claim went unanswered). The earlier claim keeps the id (the runtime id breaks a tie):
   * both sides decide the same. The keeper announces itself again, so everyone ends up knowing
   * it; the other gives way, before its ready() resolves when the announcements crossed before
   * its own came back, else later with a warning.
   */
  _conflict(node, message, i) {
    const rt = message.rt
    const at = message.at === undefined ? undefined : message.at[i]
    const mine = this.claimedAt.get(node.id)
    const theirs = at !== undefined && mine !== undefined && (at < mine || (at === mine && rt < this.rt))
    if (theirs) this._refuse(node, rt, !this.echoes.has(node.id))
    else this._announce([node.id])
  }

  _onStatus(event, detail) {
    if (event === 'connected') {
      this.state = 'connected'
      const max = Number(detail)
      if (max > 0) this.maxPayload = max
      this.messageLimit = this._messageLimit()
      const now = performance.now()
      for (const claim of this.claims.values()) claim.sentAt = now
      this._hold(-1)
      this._connected()
    } else if (event === 'failed') {
      this.state = 'failed'
      this.failure = new HappenError('CONNECTION_FAILED', detail)
      this._hold(-1)
      this._failed(this.failure)
      for (const branch of [...this.waiting.keys()]) this._failBranch(branch, 'CONNECTION_FAILED', detail)
      for (const claim of this.claims.values()) claim.granted()
      this.claims.clear()
      for (const id of [...this.echoes.keys()]) this._heard(id)
      for (const [token, flush] of this.flushes) {
        this.flushes.delete(token)
        this._hold(-1)
        flush.reject(this.failure)
      }
    } else if (event === 'flushed' || event === 'flush-failed') {
      const token = event === 'flushed' ? detail : detail.split(' ')[0]
      const flush = this.flushes.get(token)
      if (flush === undefined) return
      this.flushes.delete(token)
      this._hold(-1)
      if (event === 'flushed') flush.resolve()
      else flush.reject(new HappenError('CONNECTION_FAILED', `NATS flush failed: ${detail}`))
    } else if (event === 'reconnected' && this.state === 'connected') {
      // Whatever was in flight while the server was away may be lost, liveness pings and their
      // answers included: check everything again at once.
      for (const waiting of this.waiting.values()) {
        waiting.sentAt = -Infinity
        waiting.pinged = false
      }
      this.pings.clear()
      this._out(PRESENCE, '', '', JSON.stringify({ hello: this.inbox }))
    }
  }

  // --- liveness of long-running remote branches -------------------------------------------

  /**
   * Every half heartbeat: asks whether the flows of the branches waiting longer than a heartbeat
   * still run. A check travels the way its requests did (a framed request's on its runtime's
   * frame subject, a direct one's on its node's subject), so it reaches the serving process
   * after them: a process answers "not running" only for a request it has really not received.
   * No responders: the node's process is gone; "lost": the request never arrived (say, the
   * server restarted) or its process restarted. Either fails the branch.
   */
  _checkLiveness() {
    if (this.state !== 'connected') return
    if (this.claims.size > 0) this._expireClaims()
    if (this.echoes.size > 0) {
      // An announcement lost (the server restarted): nothing more to wait for.
      const due = performance.now() - this.heartbeat
      for (const [id, echo] of [...this.echoes]) if (echo.sentAt <= due) this._heard(id)
    }
    if (this.waiting.size === 0) return
    const due = performance.now() - this.heartbeat
    const byRoute = new Map()
    for (const [branch, waiting] of this.waiting) {
      if (waiting.sentAt > due || waiting.pinged) continue
      const route = waiting.frame !== 0 ? `happen.rt.${waiting.host}` : subjectOf(waiting.node.id)
      let list = byRoute.get(route)
      if (list === undefined) byRoute.set(route, (list = []))
      list.push(branch)
    }
    for (const [route, branches] of byRoute) {
      const key = `p${this.nextToken++}`
      this.pings.set(key, branches)
      for (const branch of branches) this.waiting.get(branch).pinged = true
      const replies = branches.map((b) => this.inbox + b)
      this._out(route, this.inbox + key, '', JSON.stringify({ running: replies }))
    }
  }

  /**
   * A claim nobody answered within a heartbeat (a host whose connection died without the server
   * noticing yet, or one too busy to answer): the id is taken as free; if a live host did have it,
   * the announcements meet and the later claim gives way.
   */
  _expireClaims() {
    const due = performance.now() - this.heartbeat
    for (const [key, claim] of [...this.claims]) if (claim.sentAt <= due) this._onCheckAnswer(key, null)
  }

  _onPing(reply, body) {
    const { running } = JSON.parse(body)
    const lost = running.filter((r) => {
      const cut = r.lastIndexOf('.') + 1
      const serving = this.serving.get(r.slice(0, cut))
      return serving === undefined || !serving.has(Number(r.slice(cut)))
    })
    this._out(reply, '', '', JSON.stringify({ lost, rt: this.rt }))
  }

  _onPingAnswer(key, header, body) {
    const branches = this.pings.get(key)
    if (branches === undefined) return
    this.pings.delete(key)
    const gone = header === 'status:503'
    const lost = gone ? null : new Set(JSON.parse(body).lost)
    for (const branch of branches) {
      const waiting = this.waiting.get(branch)
      if (waiting === undefined) continue
      const id = waiting.node.id
      if (gone) {
        this._failBranch(
          branch,
          'NODE_LOST',
          `Node '${id}' stopped answering while its flow was running: no process hosts it any more (its process exited or lost its NATS connection)`,
        )
      } else if (lost.has(this.inbox + branch)) {
        this._failBranch(branch, 'NODE_LOST', `Node '${id}' is not running this flow: the event was lost in transit (the NATS server restarted?) or its process restarted`)
      } else {
        waiting.pinged = false
        waiting.sentAt = performance.now()
      }
    }
  }

  // --- end ----------------------------------------------------------------------------------

  async close() {
    if (this.closed) return
    if (this.state === 'connected') {
      if (this.subscriptions.size > 0) {
        this._out(PRESENCE, '', '', JSON.stringify({ down: [...this.subscriptions.keys()], from: this.inbox, rt: this.rt }))
      }
      await this._flushConnection().catch(() => {})
    }
    for (const claim of this.claims.values()) claim.granted()
    this.claims.clear()
    for (const id of [...this.echoes.keys()]) this._heard(id)
    for (const branch of [...this.waiting.keys()]) this._failBranch(branch, 'SHUTDOWN', 'the happen runtime was shut down before the remote node answered')
    this.closed = true
    clearInterval(this.timer)
    this._sendNow()
    native.natsClose(this.handle)
  }
}

NatsTransport.prototype.type = 'nats'
NatsTransport.prototype.place = 'another process'

module.exports = { NatsTransport, subjectOf, unserialisable }
