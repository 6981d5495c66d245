'use strict'

const { inspect } = require('node:util')

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

function describe(value) {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`
  if (typeof value === 'string') return `type string (${inspect(value.length > 28 ? value.slice(0, 25) + '...' : value)})`
  if (typeof value === 'object') {
    if (Array.isArray(value)) return `an array of length ${value.length}`
    const ctor = value.constructor && value.constructor.name
    return ctor && ctor !== 'Object' ? `an instance of ${ctor}` : inspect(value, { depth: 0, breakLength: Infinity })
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
  const error = new RangeError(`The value of "${name}" is out of range. It must be ${expected}. Received ${inspect(actual)}`)
  error.code = 'ERR_OUT_OF_RANGE'
  return error
}

/** Native errors carry their code as a "[CODE] " prefix. */
function fromNative(error) {
  const match = /^\[([A-Z_]+)\] ([\s\S]*)$/.exec(error && error.message)
  if (!match) return new HappenError('INTERNAL', `happen's native core failed: ${error && error.message}`, { cause: error })
  if (match[1] === 'INVALID_PATTERN') return new TypeError(`The "pattern" argument ${match[2]}`)
  return new HappenError(match[1], match[2])
}

function errorMessage(reason) {
  if (reason instanceof Error) return reason.message
  if (typeof reason === 'string') return reason
  try {
    return `non-Error value thrown: ${inspect(reason, { depth: 1, breakLength: Infinity })}`
  } catch {
    return 'non-Error value thrown'
  }
}

module.exports = { HappenError, invalidArg, outOfRange, fromNative, errorMessage, describe }
