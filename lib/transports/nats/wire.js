'use strict'

// The NATS wire codec: what the transport's messages are made of, and what JSON can carry.
// - subjectOf(id): a node's subject; ids of subject-safe tokens go as they are, others
//   base64url-encoded, so every id has exactly one subject.
// - checkJson(value, path, what()): throws NOT_SERIALIZABLE naming the field when JSON cannot
//   carry `value` faithfully (functions, symbols, BigInts, Maps, Sets, cycles).
// - describeError / remoteError: an error crosses the wire as { message, code, name } and comes
//   back as an Error (or HappenError) with those, and `node` naming where it was thrown.
// - encodeCausal / decodeCausal: a causal context as CAUSAL_FIELDS JSON values in a list
//   (a JSON array parses in about half the time of the same object with its keys).
// - WireBatch: a batch's per-event causal contexts as they came over the wire.

const { HappenError, fieldPath } = require('../../errors')

const PRESENCE = 'happen.presence'
/** Fan frames: one message for every runtime a turn's frames go to; each serves its own part. */
const FAN = 'happen.fan'
/** Characters of one outbound frame of requests or replies at most (see messageLimit). */
const FRAME_LIMIT = 512 * 1024
/** How often (in entries) serving a frame looks whether its answers so far should leave early. */
const REPLY_EVERY = 16
/**
 * How long (ms) a frame is served before its answers so far leave (the sender can start on
 * them). Short, so that the sender works on early answers while the host serves the rest of
 * the frame instead of each waiting on the other; each early answer costs one message more.
 */
const EARLY_REPLY_MS = 0.1

/**
 * A causal context on the wire: id (for the sender's own id `<sender's runtime id>-<seq>`,
 * which every event it sends has, the seq alone; any other id as it is), sender, causationId,
 * correlationId (0: the same as id, as for every root event), path, timestamp, extra (0, or an
 * object with what only some sends carry: traceparent, tracestate, origin, batch).
 */
const CAUSAL_FIELDS = 7

/**
 * The causal context's CAUSAL_FIELDS values, comma-separated, to go inside a JSON array;
 * `prefix` is the sender's id prefix (`<runtime id>-`).
 */
function encodeCausal(causal, extra, prefix) {
  const { id, correlationId } = causal
  const text = JSON.stringify([
    id.startsWith(prefix) ? Number(id.slice(prefix.length)) : id,
    causal.sender,
    causal.causationId,
    correlationId === id ? 0 : correlationId,
    causal.path,
    causal.timestamp,
    extra,
  ])
  return text.slice(1, -1)
}

/** The causal context whose values start at `list[at]`, sent by the runtime `rt`. */
function decodeCausal(list, at, rt) {
  const seq = list[at]
  const id = typeof seq === 'number' ? `${rt}-${seq}` : seq
  const correlationId = list[at + 3]
  return {
    id,
    sender: list[at + 1],
    causationId: list[at + 2],
    correlationId: correlationId === 0 ? id : correlationId,
    path: list[at + 4],
    timestamp: list[at + 5],
  }
}

/** The inbox (`_HAPPEN.<route>.<secret>.`) a reply subject of that inbox belongs to. */
function inboxOf(subject) {
  return subject.slice(0, subject.lastIndexOf('.') + 1)
}

/** The id prefix of the runtime whose inbox is `inbox`: the token before its secret. */
function runtimeOf(inbox) {
  const secret = inbox.lastIndexOf('.', inbox.length - 2)
  return inbox.slice(inbox.lastIndexOf('.', secret - 1) + 1, secret)
}

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
  if (
    value instanceof Map ||
    value instanceof Set ||
    value instanceof WeakMap ||
    value instanceof WeakSet ||
    value instanceof Promise
  ) {
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
      const problem = unserialisable(value[key], fieldPath(path, key), seen)
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
  if (
    proto !== Object.prototype &&
    proto !== null &&
    (value instanceof Map ||
      value instanceof Set ||
      value instanceof WeakMap ||
      value instanceof WeakSet ||
      value instanceof Promise)
  )
    return false
  for (const key in value) {
    if (Object.hasOwn(value, key) && !plainJson(value[key], depth + 1)) return false
  }
  return true
}

/**
 * Throws a HappenError NOT_SERIALIZABLE naming the field when JSON cannot carry `value`;
 * `what()` names the value in the message (a function: most values pass, and their sends
 * should not build a message each).
 */
function checkJson(value, path, what) {
  if (plainJson(value, 0)) return
  const problem = unserialisable(value, path, [])
  if (problem !== null) throw new HappenError('NOT_SERIALIZABLE', `${what()} cannot be sent over NATS: ${problem}`)
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
  return {
    message: typeof error === 'string' ? error : `non-Error value thrown: ${String(error)}`,
    code: null,
    name: 'Error',
  }
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

module.exports = {
  PRESENCE,
  FAN,
  FRAME_LIMIT,
  REPLY_EVERY,
  EARLY_REPLY_MS,
  CAUSAL_FIELDS,
  encodeCausal,
  decodeCausal,
  subjectOf,
  inboxOf,
  runtimeOf,
  unserialisable,
  checkJson,
  remoteError,
  describeError,
  WireBatch,
}
