'use strict'

const { inspect } = require('node:util')
const path = require('node:path')

/** Stack frames in happen's own modules (`lib/`), left out of what a HANDLER_FAILED shows. */
const HAPPEN_LIB = __dirname + path.sep

/** Every error happen raises on its own account: `code` says which. */
class HappenError extends Error {
  constructor(code, message, extra) {
    super(message, extra && 'cause' in extra ? { cause: extra.cause } : undefined)
    this.name = 'HappenError'
    this.code = code
    if (extra) {
      for (const key of Object.keys(extra)) if (key !== 'cause') this[key] = extra[key]
    }
  }
}

/**
 * HANDLER_FAILED: one or more flows of a send threw. What holds: its message names each failing
 * node, event and step with the thrown message; its `stack` is that message followed by the
 * first failure's own frames (happen's frames left out), so the top frame is the user's handler;
 * `cause` is the first failure's thrown value. `results`, `errors` (by node id) and `failures`
 * ({ node, type, step, error }) are non-enumerable: readable as properties, but an uncaught one
 * (which Node prints with every enumerable property and the cause) prints each error once.
 */
function handlerFailed(message, { failures, results, errors }) {
  const limit = Error.stackTraceLimit
  // The place it is built (happen's delivery) says nothing; no frames are captured.
  Error.stackTraceLimit = 0
  let error
  try {
    error = new HappenError('HANDLER_FAILED', message, { cause: failures[0].error })
  } finally {
    Error.stackTraceLimit = limit
  }
  for (const [key, value] of [
    ['results', results],
    ['errors', errors],
    ['failures', failures],
  ]) {
    Object.defineProperty(error, key, { value, writable: true, configurable: true, enumerable: false })
  }
  error.stack = `${error.name}: ${message}${userFrames(failures[0].error)}`
  return error
}

/** The "    at …" lines of a thrown value's stack outside happen's modules, each after a newline; '' when none. */
function userFrames(thrown) {
  let stack
  try {
    stack = thrown instanceof Error ? thrown.stack : undefined
  } catch {
    return ''
  }
  if (typeof stack !== 'string') return ''
  let frames = ''
  for (const line of stack.split('\n')) {
    if (/^\s+at /.test(line) && !line.includes(HAPPEN_LIB)) frames += `\n${line}`
  }
  return frames
}

/** How a received value reads in an error message; never throws (a hostile Proxy included). */
function describe(value) {
  try {
    return describeUnsafe(value)
  } catch {
    return 'a value that cannot be inspected'
  }
}

function describeUnsafe(value) {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`
  if (typeof value === 'string')
    return `type string (${inspect(value.length > 28 ? `${value.slice(0, 25)}...` : value)})`
  if (typeof value === 'object') {
    if (Array.isArray(value)) return `an array of length ${value.length}`
    const ctor = value.constructor?.name
    if (ctor && ctor !== 'Object') return `an instance of ${ctor}`
    const text = inspect(value, { depth: 0, breakLength: Infinity })
    return text.length > 80 ? `${text.slice(0, 77)}...` : text
  }
  return `type ${typeof value} (${inspect(value)})`
}

/** In the style of Node's ERR_INVALID_ARG_TYPE: names the argument, what was expected and what came. */
function invalidArg(name, expected, actual) {
  const error = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(actual)}`)
  error.code = 'ERR_INVALID_ARG_TYPE'
  return error
}

function outOfRange(name, expected, actual) {
  const error = new RangeError(
    `The value of "${name}" is out of range. It must be ${expected}. Received ${inspect(actual)}`,
  )
  error.code = 'ERR_OUT_OF_RANGE'
  return error
}

/** The codes the native core puts in its "[CODE] " prefix; anything else is INTERNAL. */
const NATIVE_CODES = new Set([
  'SHUTDOWN',
  'DUPLICATE_NODE',
  'UNKNOWN_NODE',
  'UNKNOWN_HANDLER',
  'FLOW_TOO_LONG',
  'INTERNAL',
])

/**
 * Native errors carry their code as a "[CODE] " prefix. Everything else that comes out of the
 * addon (a caught Rust panic, a failed argument conversion) is a bug of happen's: INTERNAL.
 */
function fromNative(error) {
  let message
  try {
    message = error instanceof Error ? error.message : String(error)
  } catch {
    message = 'unreadable native error'
  }
  const match = /^\[([A-Z_]+)\] ([\s\S]*)$/.exec(message)
  if (match && match[1] === 'INVALID_PATTERN') {
    const e = new TypeError(`The "pattern" argument ${match[2]}`)
    e.code = 'ERR_INVALID_ARG_VALUE'
    return e
  }
  if (!match || !NATIVE_CODES.has(match[1])) {
    // A caught panic: the addon's panic hook kept its message and place (src/panic.rs).
    const panic = lastPanic()
    const detail = panic?.startsWith(message) ? panic : message
    return new HappenError('INTERNAL', `happen's native core failed (a bug in happen, please report it): ${detail}`, {
      cause: error,
    })
  }
  const next = NEXT_STEPS[match[1]]
  return new HappenError(match[1], next === undefined ? match[2] : `${match[2]}; ${next}`)
}

/** What to do about an error, added to its message (the native core's ones by fromNative). */
const NEXT_STEPS = {
  DISPOSED: 'create a new node (createNode) and stop using the old object',
  SHUTDOWN: 'create a new runtime with initializeHappen()',
  DUPLICATE_NODE: 'pick another id, or dispose() the old node first',
  UNKNOWN_NODE: 'check the id, or create the node (createNode) before addressing it',
  UNKNOWN_HANDLER: 'a bug in happen, please report it',
  FLOW_TOO_LONG: 'a step keeps returning a function (often itself): end the flow with a value',
}

/** The last panic the addon caught on this thread, or null. */
function lastPanic() {
  try {
    return require('./native').lastPanic() ?? null
  } catch {
    return null
  }
}

/** A readable line for any thrown value: Errors, strings, undefined, hostile Proxies. Never throws. */
function errorMessage(reason) {
  try {
    if (reason instanceof Error) return String(reason.message)
    if (typeof reason === 'string') return reason
    return `non-Error value thrown: ${inspect(reason, { depth: 1, breakLength: Infinity })}`
  } catch {
    return 'non-Error value thrown (it could not be inspected)'
  }
}

function shutdownError(what) {
  return new HappenError('SHUTDOWN', `Cannot ${what}(): this happen runtime has been shut down; ${NEXT_STEPS.SHUTDOWN}`)
}

function disposedError(what, id) {
  return new HappenError('DISPOSED', `Cannot ${what}: node '${id}' has been disposed; ${NEXT_STEPS.DISPOSED}`)
}

/** How an error names a field of a value: `payload.user`, or `payload["a-b"]` for other keys. */
function fieldPath(path, key) {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`
}

module.exports = {
  HappenError,
  NEXT_STEPS,
  handlerFailed,
  fieldPath,
  invalidArg,
  outOfRange,
  fromNative,
  errorMessage,
  describe,
  shutdownError,
  disposedError,
}
