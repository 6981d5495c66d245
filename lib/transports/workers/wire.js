'use strict'

// What crosses between the threads of one process: values by structured clone (`v8.serialize`,
// what postMessage copies: Maps, Sets, Dates, RegExps, typed arrays and Buffers survive), and
// errors as { message, name, code, stack } rebuilt on the other side.
//
// A value structured clone cannot copy (a function, a symbol, a Promise, a WeakMap, ...), one it
// would change (an Error of a kind of its own, or with fields such as `code`: it arrives as a
// plain Error without them), or one nesting objects more than MAX_NESTING levels (which the
// receiving thread's stack could not decode), is refused with NOT_SERIALIZABLE naming the
// field (`payload.callback`, `events[2].payload.fn`, `event.payload.a.a.a… is nested more
// than 1000 levels`). What happen wraps around a user's value (the event, a batch, the answers
// of a turn, an error's description) are its `carriers`: levels allowed on top of MAX_NESTING.
//
// Decoding (`headerOf`, `bodyOf`) trusts nothing: it throws on what it cannot read, and the
// transport turns that into a failure of the entries the message carried.

const v8 = require('node:v8')
const { types } = require('node:util')
const { HappenError, fieldPath } = require('../../errors')
const { MAX_NESTING, NESTING_SHOWN, nestedTooDeep } = require('../../validate')

/**
 * `value` as it crosses: JSON text when JSON carries it exactly as structured clone would
 * (plain objects and arrays of strings, finite numbers, booleans and null, at most 33 levels:
 * cheaper both ways), else structured-clone bytes. Throws NOT_SERIALIZABLE naming the field
 * that cannot cross; `carriers` levels of happen's own wrap the user's value (see above);
 * `exact` (the default) refuses what structured clone would change, too (see serialize).
 */
function encode(value, path, what, carriers = 0, exact = true) {
  return plain(value, 0) ? JSON.stringify(value) : serialize(value, path, what, carriers, exact)
}

/** Whether JSON round-trips `value` exactly as structured clone does (deep or odd: no). */
function plain(value, depth) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0)
    case 'object':
      break
    default:
      return false
  }
  if (value === null) return true
  if (depth > 32) return false
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!plain(value[i], depth + 1)) return false
    return true
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return false
  for (const key in value) {
    if (!Object.hasOwn(value, key)) return false
    if (!plain(value[key], depth + 1)) return false
  }
  return true
}

/**
 * Serializes `value`, or throws NOT_SERIALIZABLE naming the field that cannot cross, or that
 * structured clone would change (`exact`: an Error whose kind or fields it drops).
 */
function serialize(value, path, what, carriers = 0, exact = true) {
  const changed = changedByClone(value, MAX_NESTING + carriers, path, NESTING_SHOWN + carriers, exact)
  if (changed !== null) throw new HappenError('NOT_SERIALIZABLE', `${what} cannot cross to another thread: ${changed}`)
  try {
    return v8.serialize(value)
  } catch (error) {
    const problem = uncloneable(value, path, new Set()) ?? `${path}: ${error.message}`
    throw new HappenError('NOT_SERIALIZABLE', `${what} cannot cross to another thread: ${problem}`)
  }
}

/** Whether `value` crosses (`carriers` levels of happen's own around it; see serialize). */
function crosses(value, carriers, exact) {
  if (plain(value, 0)) return true
  try {
    serialize(value, '', '', carriers, exact)
    return true
  } catch {
    return false
  }
}

/**
 * What structured clone would not carry as it is inside `value`, as a sentence naming the
 * field, or null: objects nested past `limit` levels (the path's first `shown` fields:
 * `payload.a.a.a… is nested more than 1000 levels`), and (`exact`) an Error whose kind or
 * fields it would drop. A Proxy whose traps throw is left to v8.serialize to refuse.
 */
function changedByClone(value, limit, path, shown, exact) {
  let found
  try {
    found = changeIn(value, 0, { limit, shown, exact, seen: new Set() })
  } catch {
    return null
  }
  if (found === null) return null
  const at = path + found.segments.reverse().join('')
  return found.reason === null ? nestedTooDeep(at) : `${at} ${found.reason}`
}

/**
 * changedByClone's walk: null, or { segments (innermost first; past `shown` levels only for a
 * reason that names the whole path), reason (null: nested too deep) }. It visits what
 * v8.serialize writes, in its order, each object once (a value met again is a reference in
 * the bytes, not a level); every object is a level, leaves (Dates, typed arrays...) too.
 */
function changeIn(value, depth, walk) {
  if (typeof value !== 'object' || value === null || walk.seen.has(value)) return null
  if (depth >= walk.limit) return { segments: [], reason: null }
  walk.seen.add(value)
  const below = depth + 1
  const proto = Object.getPrototypeOf(value)
  if (proto === Object.prototype || proto === null || (!Array.isArray(value) && ordinary(value))) {
    for (const key of Object.keys(value)) {
      const found = changeIn(value[key], below, walk)
      if (found !== null) return along(found, fieldPath('', key), depth, walk)
    }
    return null
  }
  if (Array.isArray(value)) {
    let found = null
    someItem(value, (item, i) => (found = along(changeIn(item, below, walk), `[${i}]`, depth, walk)) !== null)
    return found
  }
  if (value instanceof Map || value instanceof Set) return changeInEntries(value, depth, walk)
  if (!isError(value)) return null
  const loss = walk.exact ? errorLoss(value) : null
  if (loss !== null) return { segments: [], reason: loss }
  // An Error crosses with its message, stack and cause: only the cause nests.
  if (!Object.hasOwn(value, 'cause')) return null
  return along(changeIn(value.cause, below, walk), '.cause', depth, walk)
}

/** changeIn for a Map's keys and values, or a Set's entries. */
function changeInEntries(value, depth, walk) {
  const below = depth + 1
  let found = null
  let i = 0
  if (value instanceof Set) {
    for (const entry of value) {
      found = changeIn(entry, below, walk)
      if (found !== null) return along(found, `.<entry ${i}>`, depth, walk)
      i++
    }
    return null
  }
  value.forEach((entry, key) => {
    if (found !== null) return
    found = along(changeIn(key, below, walk), `.<key ${i}>`, depth, walk)
    if (found === null) {
      found = changeIn(entry, below, walk)
      if (found !== null) along(found, `.get(${describeKey(key)})`, depth, walk)
    }
    i++
  })
  return found
}

/** `found` (a change below the object at `depth`), with `segment` on its path where it is shown. */
function along(found, segment, depth, walk) {
  if (found !== null && (depth < walk.shown || found.reason !== null)) found.segments.push(segment)
  return found
}

/** An object of no built-in kind (a class instance): structured clone copies its own fields. */
const ordinary = (value) => !(value instanceof Map || value instanceof Set || isError(value) || leaf(value))

const isError = (value) => types.isNativeError(value) || value instanceof Error

/** The kinds of Error structured clone rebuilds as such; any other arrives as a plain Error. */
const CLONED_ERRORS = new Set([
  'Error',
  'EvalError',
  'RangeError',
  'ReferenceError',
  'SyntaxError',
  'TypeError',
  'URIError',
])

/**
 * What structured clone drops of `error` (the rest of a sentence), or null: it carries the
 * message, stack, cause and a standard kind, not a subclass nor fields of its own (`code`).
 */
function errorLoss(error) {
  const proto = Object.getPrototypeOf(error)
  if (proto === null || !Object.hasOwn(proto, 'name') || !CLONED_ERRORS.has(proto.name)) {
    const kind = typeof error.constructor?.name === 'string' ? error.constructor.name : 'Error'
    return `is an Error of its own kind (${kind}), which structured clone turns into a plain Error`
  }
  const fields = Object.keys(error).filter((key) => key !== 'message' && key !== 'stack' && key !== 'cause')
  if (fields.length === 0) return null
  return `is a ${proto.name} with fields structured clone drops (${fields.join(', ')}); send them as plain data`
}

/**
 * Whether `visit(item, index)` returns true for an item of `array`, in order, holes skipped.
 * From the first hole on it goes by the array's keys: a sparse array costs its entries, not
 * its length (`a[1e9] = 1` is one entry, as v8.serialize writes it).
 */
function someItem(array, visit) {
  for (let i = 0; i < array.length; i++) {
    const item = array[i]
    if (item === undefined && !(i in array)) return someKeyFrom(array, i, visit)
    if (visit(item, i)) return true
  }
  return false
}

function someKeyFrom(array, from, visit) {
  for (const key of Object.keys(array)) {
    const i = Number(key)
    if (Number.isInteger(i) && i >= from && visit(array[i], i)) return true
  }
  return false
}

const CLONEABLE = [Date, RegExp, ArrayBuffer, DataView, Boolean, Number, String]

/** Values structured clone copies whole, without visiting fields of theirs. */
function leaf(value) {
  return ArrayBuffer.isView(value) || value instanceof Error || CLONEABLE.some((type) => value instanceof type)
}

const deserialize = (bytes) => v8.deserialize(bytes)

/**
 * One message between threads: a small JSON header (numbers, ids, the causal context) and an
 * optional body, as `encode` made it. Layout: u32 LE header length (its top bit set when the
 * body is JSON text), header, body. JSON costs a fraction of v8.serialize for the header, and
 * the body (already encoded once to be checked) goes in as it is.
 */
const JSON_BODY = 0x80000000

function frame(header, body) {
  const json = JSON.stringify(header)
  const length = Buffer.byteLength(json)
  if (typeof body === 'string') {
    const bodyLength = Buffer.byteLength(body)
    const bytes = Buffer.allocUnsafe(4 + length + bodyLength)
    bytes.writeUInt32LE((length | JSON_BODY) >>> 0, 0)
    bytes.write(json, 4, length, 'utf8')
    bytes.write(body, 4 + length, bodyLength, 'utf8')
    return bytes
  }
  const bytes = Buffer.allocUnsafe(4 + length + (body === null ? 0 : body.length))
  bytes.writeUInt32LE(length, 0)
  bytes.write(json, 4, length, 'utf8')
  if (body !== null) body.copy(bytes, 4 + length)
  return bytes
}

/** The header of a frame; `bodyOf` gives its body. */
function headerOf(bytes) {
  const length = bytes.readUInt32LE(0) & ~JSON_BODY
  return JSON.parse(bytes.toString('utf8', 4, 4 + length))
}

function bodyOf(bytes) {
  const word = bytes.readUInt32LE(0)
  const start = 4 + (word & ~JSON_BODY)
  return word & JSON_BODY ? JSON.parse(bytes.toString('utf8', start)) : v8.deserialize(bytes.subarray(start))
}

/** Where structured clone fails inside `value`, as a sentence naming the field, or null. */
function uncloneable(value, path, seen) {
  switch (typeof value) {
    case 'function':
      return `${path} is a function${value.name ? ` (${value.name})` : ''}`
    case 'symbol':
      return `${path} is a Symbol`
    case 'object':
      break
    default:
      return null
  }
  if (value === null || seen.has(value)) return null
  seen.add(value)
  if (leaf(value)) return null
  if (value instanceof Map) {
    let i = 0
    for (const [key, entry] of value) {
      const problem =
        uncloneable(key, `${path}.<key ${i}>`, seen) ?? uncloneable(entry, `${path}.get(${describeKey(key)})`, seen)
      if (problem !== null) return problem
      i++
    }
    return null
  }
  if (value instanceof Set) {
    let i = 0
    for (const entry of value) {
      const problem = uncloneable(entry, `${path}.<entry ${i++}>`, seen)
      if (problem !== null) return problem
    }
    return null
  }
  if (Array.isArray(value)) {
    let problem = null
    someItem(value, (item, i) => (problem = uncloneable(item, `${path}[${i}]`, seen)) !== null)
    return problem
  }
  // A class instance clones as a plain object of its own fields, unless V8 refuses its kind.
  if (value instanceof Promise || value instanceof WeakMap || value instanceof WeakSet || value instanceof WeakRef) {
    return `${path} is a ${value.constructor.name}`
  }
  for (const key of Object.keys(value)) {
    const problem = uncloneable(value[key], fieldPath(path, key), seen)
    if (problem !== null) return problem
  }
  return null
}

function describeKey(key) {
  return typeof key === 'string' ? JSON.stringify(key) : typeof key === 'object' ? '<object>' : String(key)
}

/** An error as it crosses: what a plain rebuild needs (structured clone drops `code`). */
function describeError(error) {
  if (error instanceof Error) {
    return {
      message: error.message,
      name: error.name,
      code: error.code ?? null,
      stack: error.stack ?? null,
      details: errorDetails(error),
    }
  }
  return { thrown: cloneOrString(error) }
}

/** The HappenError details (results, errors, pending...) a failure carries, where they clone. */
function errorDetails(error) {
  if (!(error instanceof HappenError)) return null
  const details = {}
  for (const key of ['results', 'errors', 'pending', 'failures']) {
    if (error[key] !== undefined) details[key] = cloneOrString(error[key])
  }
  return details
}

/**
 * `value` when it crosses inside a record keyed by node (one carrier level), else its text.
 * Errors in it (a HANDLER_FAILED's `errors`) cross as structured clone has them.
 */
function cloneOrString(value) {
  if (crosses(value, 1, false)) return value
  try {
    return String(value)
  } catch {
    return 'a value that can neither cross to another thread nor be turned into text'
  }
}

/**
 * Levels an error's description puts around a value it carries: the description, its details
 * and a record keyed by node (`{ details: { results: { node: value } } }`).
 */
const DESCRIPTION_LEVELS = 3

/** The error a flow elsewhere threw, rebuilt here; `node` names where it was thrown. */
function rebuildError(described, node) {
  if (described !== null && typeof described === 'object' && 'thrown' in described) return described.thrown
  const { message, name, code, stack, details } = described
  const error = name === 'HappenError' ? new HappenError(code, message, details ?? undefined) : new Error(message)
  if (name !== 'HappenError') {
    if (name && name !== 'Error')
      Object.defineProperty(error, 'name', { value: name, writable: true, configurable: true })
    if (code !== null && code !== undefined) error.code = code
  }
  if (stack) error.stack = stack
  error.node = node
  return error
}

module.exports = {
  DESCRIPTION_LEVELS,
  encode,
  serialize,
  deserialize,
  frame,
  headerOf,
  bodyOf,
  describeError,
  rebuildError,
}
