'use strict'

const { invalidArg, outOfRange, describe, shutdownError, disposedError } = require('./errors')
const { checkTransportOptions } = require('./transport')

/**
 * `{ ... }` or `Object.create(null)`, from any realm (a vm context, jest's sandbox): its prototype
 * is null or has no prototype itself. Class instances, Maps, Dates, boxed strings are not.
 */
function isPlainObject(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null || Object.getPrototypeOf(proto) === null
}

/** Throws a TypeError naming the field when `event` is not `{ type, payload?, causationId?, correlationId? }`. */
function checkEvent(event, name) {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    throw invalidArg(name, 'an event object { type, payload }', event)
  }
  if (!isPlainObject(event)) {
    throw invalidArg(
      name,
      'a plain event object { type, payload } (not a class instance, Map or other exotic object)',
      event,
    )
  }
  const type = event.type
  if (typeof type !== 'string' || type.length === 0) {
    throw invalidArg(`${name}.type`, 'a non-empty string', type)
  }
  const { causationId, correlationId } = event
  if (causationId != null && (typeof causationId !== 'string' || causationId.length === 0)) {
    throw invalidArg(`${name}.causationId`, 'a non-empty string when present', causationId)
  }
  if (correlationId != null && (typeof correlationId !== 'string' || correlationId.length === 0)) {
    throw invalidArg(`${name}.correlationId`, 'a non-empty string when present', correlationId)
  }
}

/**
 * Validates a batch; returns its one shared type, or null when the types differ (or the batch is
 * empty). Sets `checkBatch.ownIds` when any event carries its own causation or correlation id, so
 * the caller needs no second pass over a large batch.
 *
 * Every event meets the rules of checkEvent, and the first that does not is refused by
 * checkEvent itself, so a batch names its bad member as a lone event would be named. One loop,
 * nothing allocated per event: a type equal to the first event's is known good, a prototype
 * equal to the last one seen is known plain. An event that is a primitive has no string type
 * (or, given one through its prototype, fails the prototype check). Only an event with a
 * `length` can be an array (every array has its own), so only those pay for Array.isArray.
 *
 * What makes it a few ns per event on V8: the first type is a string before the loop starts, so
 * comparing with it is a pointer check; and an event's reads come first and together, before
 * any branch that may call checkEvent, so V8 knows the event's hidden class from the type read
 * and folds the prototype read and the absent `length` and ids into it (the prototype read
 * alone costs about 8 ns per event otherwise).
 */
function checkBatch(events, name) {
  checkBatch.ownIds = false
  if (events.length === 0) return null
  const first = events[0]
  if (first == null || typeof first.type !== 'string' || first.type.length === 0) checkEvent(first, `${name}[0]`)
  const firstType = first.type
  let mixed = false
  let ownIds = false
  let plainPrototype = Object.prototype
  for (let i = 0; i < events.length; i++) {
    const event = events[i]
    if (event == null) checkEvent(event, `${name}[${i}]`)
    const type = event.type
    const prototype = Object.getPrototypeOf(event)
    const length = event.length
    const hasIds = event.causationId != null || event.correlationId != null
    if (type !== firstType) {
      if (typeof type !== 'string' || type.length === 0) checkEvent(event, `${name}[${i}]`)
      mixed = true
    }
    if (prototype !== plainPrototype) {
      if (prototype !== null && Object.getPrototypeOf(prototype) !== null) checkEvent(event, `${name}[${i}]`)
      plainPrototype = prototype
    }
    if (length !== undefined && Array.isArray(event)) checkEvent(event, `${name}[${i}]`)
    if (hasIds) {
      checkEvent(event, `${name}[${i}]`)
      ownIds = true
    }
  }
  checkBatch.ownIds = ownIds
  return mixed ? null : firstType
}

/**
 * How deep a payload or result may nest containers (objects, arrays, Maps, Sets) to cross a
 * thread or the network: 1,000 levels. Decoding is recursive in V8 and bounded by the receiving
 * thread's stack: on a main thread's default stack (about 1 MB, Node 20) v8.deserialize reads
 * about 1,900 levels of objects, v8.serialize writes 3,000 and JSON.stringify 4,100, so 1,000
 * leaves half the stack to the code around them. A value nested deeper is refused where it is
 * sent, with NOT_SERIALIZABLE naming its path (`payload.a.a.a… is nested more than 1000 levels`).
 */
const MAX_NESTING = 1000

/** How many leading fields of a too-deep value's path its message names. */
const NESTING_SHOWN = 3

/** The reason a value nested past MAX_NESTING is refused; `prefix` is its path's first fields. */
function nestedTooDeep(prefix) {
  return `${prefix}… is nested more than ${MAX_NESTING} levels`
}

const DEFAULT_RETURN_OPTIONS = Object.freeze({ settled: false, timeout: undefined })

function checkReturnOptions(options) {
  if (options === undefined) return DEFAULT_RETURN_OPTIONS
  if (!isPlainObject(options)) throw invalidArg('options', 'an object { settled?, timeout? }', options)
  for (const key of Object.keys(options)) {
    if (key !== 'settled' && key !== 'timeout') {
      throw invalidArg(`options.${key}`, 'absent: return() accepts only "settled" and "timeout"', options[key])
    }
  }
  const { settled, timeout } = options
  if (settled !== undefined && typeof settled !== 'boolean')
    throw invalidArg('options.settled', 'of type boolean', settled)
  if (timeout !== undefined) {
    if (typeof timeout !== 'number') throw invalidArg('options.timeout', 'of type number', timeout)
    // SPEC §6: every bad return() option is a TypeError, a bad number included.
    if (!Number.isFinite(timeout) || timeout <= 0) {
      throw invalidArg('options.timeout', 'a positive finite number of milliseconds', timeout)
    }
  }
  return { settled: settled === true, timeout }
}

/**
 * Whether `text` is well-formed UTF-16 (no lone surrogate). Node ids cross to the Rust core as
 * UTF-8, where every lone surrogate becomes U+FFFD: 'x\ud800' and 'x\udbff' would be one id.
 */
const isWellFormed =
  typeof String.prototype.isWellFormed === 'function'
    ? (text) => text.isWellFormed()
    : (text) => !/[\uD800-\uDFFF]/u.test(text) // Node 18: in a u regex a pair is one code point

/**
 * Every node id that enters happen passes here (createNode, node(id), a send's target by id,
 * as `name`): a non-empty, well-formed string, compared as the user wrote it.
 */
function checkNodeId(id, name = 'id') {
  if (typeof id !== 'string' || id.length === 0) throw invalidArg(name, 'a non-empty string', id)
  if (!isWellFormed(id)) {
    throw invalidArg(name, 'a well-formed string (a lone surrogate cannot cross to the core intact)', id)
  }
}

/**
 * createNode's options, by key and the type its value must have. None is defined yet: the
 * argument exists so options can come without changing the signature, and an unknown key is
 * refused (as initializeHappen refuses one) rather than silently ignored.
 */
const NODE_OPTIONS = {}

function checkNodeOptions(options) {
  if (options === undefined) return
  if (!isPlainObject(options)) throw invalidArg('options', 'a plain object when present', options)
  const known = Object.keys(NODE_OPTIONS)
  for (const key of Object.keys(options)) {
    const kind = NODE_OPTIONS[key]
    if (!Object.hasOwn(NODE_OPTIONS, key)) {
      const expected =
        known.length === 0 ? 'absent: createNode() has no options yet' : `one of the known keys (${known.join(', ')})`
      throw invalidArg(`options.${key}`, expected, options[key])
    }
    if (options[key] !== undefined && typeof options[key] !== kind)
      throw invalidArg(`options.${key}`, `of type ${kind}`, options[key])
  }
}

/**
 * Every target of a send is a live node of an open runtime: a NodeArray made before a dispose()
 * or shutdown() must not reach a freed slot of the core (which would deliver to another node).
 */
function checkLiveTargets(targets, what) {
  for (let i = 0; i < targets.length; i++) {
    const node = targets[i]
    if (node._index < 0) throw disposedError(what, node.id)
  }
}

/** The members of a new NodeArray are live nodes of an open runtime. */
function checkLiveMembers(nodes) {
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]
    if (node._runtime._closed) throw shutdownError('createNodeArray')
    if (node._index < 0) throw disposedError(`use nodes[${i}] in createNodeArray()`, node.id)
  }
}

function checkHandler(handler) {
  if (typeof handler !== 'function') throw invalidArg('handler', 'a function (event, context) => result', handler)
}

function checkPattern(pattern) {
  if (typeof pattern === 'function') return
  if (typeof pattern !== 'string') throw invalidArg('pattern', 'a string or a function (type) => boolean', pattern)
  if (pattern.length === 0) throw invalidArg('pattern', 'a non-empty string', pattern)
}

const CONFIG_KEYS = new Set(['historySize', 'transport', 'tracing', 'metrics'])

function checkConfig(config) {
  if (config === undefined || config === null)
    return { historySize: 10_000, transport: { type: 'memory' }, tracing: true, metrics: true }
  if (!isPlainObject(config)) throw invalidArg('config', 'an object', config)
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.has(key))
      throw invalidArg(`config.${key}`, `one of the known keys (${[...CONFIG_KEYS].join(', ')})`, key)
  }
  let historySize = 10_000
  if (config.historySize !== undefined) {
    historySize = config.historySize
    if (typeof historySize !== 'number') throw invalidArg('config.historySize', 'of type number', historySize)
    if (!Number.isInteger(historySize) || historySize < 1 || historySize > 2 ** 32 - 1) {
      throw outOfRange('config.historySize', 'a positive integer up to 4294967295', historySize)
    }
  }
  let transport = { type: 'memory' }
  if (config.transport !== undefined) {
    transport = config.transport
    if (!isPlainObject(transport)) throw invalidArg('config.transport', 'an object { type }', transport)
    if (transport.type !== 'memory') checkTransportOptions(transport)
  }
  const tracing = config.tracing === undefined ? true : config.tracing
  if (typeof tracing !== 'boolean') throw invalidArg('config.tracing', 'of type boolean', tracing)
  const metrics = config.metrics === undefined ? true : config.metrics
  if (typeof metrics !== 'boolean') throw invalidArg('config.metrics', 'of type boolean', metrics)
  return { historySize, transport, tracing, metrics }
}

module.exports = {
  MAX_NESTING,
  NESTING_SHOWN,
  nestedTooDeep,
  checkEvent,
  checkBatch,
  checkReturnOptions,
  checkNodeId,
  checkNodeOptions,
  checkHandler,
  checkPattern,
  checkConfig,
  checkLiveTargets,
  checkLiveMembers,
  isPlainObject,
  describe,
}
