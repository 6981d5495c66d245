'use strict'

// The NATS wire codec: what the transport's messages are made of, and what JSON can carry.
// - subjectOf(id): a node's subject; ids of subject-safe tokens go as they are, others
//   base64url-encoded, so every id has exactly one subject.
// - checkJson(value, path, what()): throws NOT_SERIALIZABLE naming the field when JSON would not
//   carry `value` as it is: what it cannot carry (functions, symbols, BigInts, Maps, Sets,
//   cycles), what it would silently change (Dates, RegExps, typed arrays, Buffers, Errors, NaN,
//   ±Infinity, -0, undefined or holes in arrays), and values nested past MAX_NESTING levels.
//   A value crosses exactly, or is refused; never changed on the way.
// - describeError / remoteError: an error crosses the wire as { message, code, name } and comes
//   back as an Error (or HappenError) with those, and `node` naming where it was thrown.
// - encodeCausal / decodeCausal: a causal context as CAUSAL_FIELDS JSON values in a list
//   (a JSON array parses in about half the time of the same object with its keys).
// - WireBatch: a batch's per-event causal contexts as they came over the wire.

const { types } = require('node:util')
const { HappenError, errorMessage, fieldPath } = require('../../errors')
const { MAX_NESTING, NESTING_SHOWN, nestedTooDeep } = require('../../validate')

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

/**
 * `text` as errors and logs show it: in every inbox subject (`_HAPPEN.<route>.<secret>.<key>`)
 * the secret, the token before the last, as `***` (it lets whoever holds it answer as a host).
 */
function redactInboxes(text) {
  return text.replace(/_HAPPEN\.[A-Za-z0-9_.*>-]+/g, (subject) => {
    const tokens = subject.split('.')
    if (tokens.length < 4) return subject
    tokens[tokens.length - 2] = '***'
    return tokens.join('.')
  })
}

/** `happen.node.<id>`: ids made of subject-safe tokens go as they are, others base64url-encoded. */
function subjectOf(id) {
  return /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(id)
    ? `happen.node.${id}`
    : `happen.node.~${Buffer.from(id).toString('base64url')}`
}

/**
 * What JSON would not carry as it is inside `value`, as a sentence naming the field
 * (`payload.user.callback is a function (callback)`), or null. What it names: functions,
 * symbols, BigInts, cycles, what JSON drops or changes (changedByJson: Dates, RegExps,
 * typed arrays, Buffers, ArrayBuffers, DataViews, Errors, boxed primitives, Maps, Sets...),
 * NaN, ±Infinity, -0, undefined or a hole in an array, and containers nested more than
 * MAX_NESTING levels (`payload.a.a.a… is nested more than 1000 levels`). An object with a
 * toJSON of its own (not one of those) is the user's choice of what crosses: it passes.
 */
function unserialisable(value, path, seen = []) {
  return problemIn(value, path, seen, 0, path)
}

/** unserialisable's walk: `depth` levels below the root; `prefix` its path's first fields. */
function problemIn(value, path, seen, depth, prefix) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return null
    case 'number':
      return numberProblem(value, path)
    case 'bigint':
      return `${path} is a BigInt`
    case 'symbol':
      return `${path} is a Symbol`
    case 'function':
      return `${path} is a function${value.name ? ` (${value.name})` : ''}`
  }
  if (value === null) return null
  if (seen.includes(value)) return `${path} refers back to one of its parents (a cycle)`
  if (depth >= MAX_NESTING) return nestedTooDeep(prefix)
  const changed = changedByJson(value)
  if (changed !== null) return `${path} is ${changed}`
  if (typeof value.toJSON === 'function') return null
  const below = depth + 1
  const shown = (childPath) => (below <= NESTING_SHOWN ? childPath : prefix)
  seen.push(value)
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item = value[i]
        const at = `${path}[${i}]`
        if (item === undefined) {
          return i in value
            ? `${at} is undefined, which JSON turns into null in an array`
            : `${at} is a hole of a sparse array, which JSON turns into null`
        }
        const problem = problemIn(item, at, seen, below, shown(at))
        if (problem !== null) return problem
      }
      return null
    }
    for (const key of Object.keys(value)) {
      const at = fieldPath(path, key)
      const problem = problemIn(value[key], at, seen, below, shown(at))
      if (problem !== null) return problem
    }
    return null
  } finally {
    seen.pop()
  }
}

function numberProblem(value, path) {
  if (Number.isNaN(value)) return `${path} is NaN, which JSON turns into null`
  if (!Number.isFinite(value)) return `${path} is ${value}, which JSON turns into null`
  if (Object.is(value, -0)) return `${path} is -0, which JSON turns into 0`
  return null
}

/**
 * What JSON makes of an object of a built-in kind it does not carry as it is (a phrase
 * naming the kind), or null for any other object. Tested by internal type, so values from
 * another realm (a vm context, jest's sandbox) are named alike.
 */
function changedByJson(value) {
  // An ordinary object (a class instance) has neither a tag nor an internal kind: most end here.
  if (value[Symbol.toStringTag] === undefined && objectToString.call(value) === '[object Object]') return null
  if (types.isDate(value)) return 'a Date, which JSON turns into a string'
  if (types.isRegExp(value)) return 'a RegExp, which JSON turns into {}'
  if (types.isArrayBufferView(value)) {
    if (Buffer.isBuffer(value)) return 'a Buffer, which JSON turns into { type, data }'
    if (types.isDataView(value)) return 'a DataView, which JSON turns into {}'
    return `a ${kindOf(value)}, which JSON turns into an object of its indices`
  }
  if (types.isAnyArrayBuffer(value)) {
    return `${types.isArrayBuffer(value) ? 'an ArrayBuffer' : 'a SharedArrayBuffer'}, which JSON turns into {}`
  }
  if (types.isNativeError(value) || value instanceof Error) {
    return `an Error (${kindOf(value)}), which JSON turns into {} (its message and stack are lost)`
  }
  if (types.isBoxedPrimitive(value)) return `a boxed ${kindOf(value)}, which JSON turns into a primitive`
  if (
    types.isMap(value) ||
    types.isSet(value) ||
    types.isWeakMap(value) ||
    types.isWeakSet(value) ||
    types.isPromise(value) ||
    value instanceof WeakRef
  ) {
    return `a ${kindOf(value)}, which JSON cannot carry`
  }
  return null
}

const objectToString = Object.prototype.toString

/** The built-in kind of an object (`Uint8Array`, `TypeError`), whatever its constructor says. */
function kindOf(value) {
  if (types.isNativeError(value) || value instanceof Error) {
    const name = Object.getPrototypeOf(value)?.name
    return typeof name === 'string' && name !== '' ? name : 'Error'
  }
  return objectToString.call(value).slice(8, -1)
}

/**
 * Whether JSON carries `value` as it is; a quick walk that builds no paths and allocates
 * nothing. Every send and reply runs it, so its cost on plain data is what it was: the checks
 * of the values JSON would change sit on the type tests the walk makes anyway (a number's
 * value, an array item's undefined, an object's prototype), and anything they catch is left
 * to the slow walk (unserialisable), which names it.
 */
function plainJson(value, depth) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return true
    case 'number':
      // Finite (NaN - NaN and Infinity - Infinity are NaN), and not -0.
      return value - value === 0 && (value !== 0 || 1 / value > 0)
    case 'object':
      break
    default:
      return false
  }
  if (value === null) return true
  if (depth > 64) return false // deep or cyclic: the slow walk decides
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i]
      if (item === undefined || !plainJson(item, depth + 1)) return false // undefined or a hole: null in JSON
    }
    return true
  }
  const proto = Object.getPrototypeOf(value)
  // Not a plain object of any realm: a built-in kind JSON changes is left to the slow walk.
  if (proto !== Object.prototype && proto !== null && Object.getPrototypeOf(proto) !== null) {
    if (changedByJson(value) !== null) return false
  }
  if (typeof value.toJSON === 'function') return true
  for (const key in value) {
    if (Object.hasOwn(value, key) && !plainJson(value[key], depth + 1)) return false
  }
  return true
}

/**
 * Throws a HappenError NOT_SERIALIZABLE naming the field when JSON cannot carry `value` as it
 * is; `what()` names the value in the message (a function: most values pass, and their sends
 * should not build a message each). What cannot even be walked (a Proxy whose traps throw, a
 * stack too short) is refused as well, never with a bare error.
 */
function checkJson(value, path, what) {
  let problem
  try {
    if (plainJson(value, 0)) return
    problem = unserialisable(value, path, [])
  } catch (error) {
    problem = `${path} could not be read (${errorMessage(error)})`
  }
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
  redactInboxes,
  unserialisable,
  checkJson,
  remoteError,
  describeError,
  WireBatch,
}
