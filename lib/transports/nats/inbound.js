'use strict'

// Inbound NATS messages, checked before anything acts on them: nothing on the wire is trusted.
// What holds:
// - parse(text) never throws: text that is not JSON gives BAD_JSON.
// - Each check* takes a parsed message and returns null when it has the shape its kind allows
//   (see each function; index.js's header comment describes the wire), else a short reason
//   naming what is wrong ("entry 3: k is -4.5, not an integer from 1 to 12"). A check never
//   throws, never loops or allocates by a count the message claims (every count is checked
//   against the values the message really holds before a loop uses it), and allocates nothing
//   when the message is good: it runs once per message on the hot path. Payloads and result
//   values are any JSON and are not looked into.
// - Counts, indexes, branches and sequence numbers are non-negative safe integers within the
//   message's own size. Node ids, event ids and types are non-empty strings of any length, as
//   lib/validate.js lets a local node id or event type be (a cap here would make a legitimate
//   node unreachable over NATS; a string's cost was paid by the parse). Runtime names (they
//   make subjects) are subject-safe tokens (A-Za-z0-9_- separated by single dots), at most
//   RUNTIME_NAME_LIMIT characters. Keys a message format does not list are not read.
// - readCheck and readAnswer (liveness checks and the answers to them and to claims) return the
//   message's parts or a reason, under the same bounds: branch lists are non-negative safe
//   integers, a check no longer than one a runtime sends, an answer naming no more than asked.
// - Drops (one per transport) counts the messages refused, by kind and reason; logs each
//   (sender, reason) once under NODE_DEBUG=happen, remembering a bounded set of pairs; and emits
//   a process warning at most once per WARNING_INTERVAL_MS, naming the subject, the sender when
//   known, the reason and how many were dropped since the last warning. What strangers sent is
//   printed clipped and with control characters replaced.

const debug = require('../../debug')
const { CAUSAL_FIELDS } = require('./wire')

/** What parse() returns for text that is not JSON. */
const BAD_JSON = Symbol('bad JSON')
/** Characters of a runtime name at most (a runtime's own is 12). */
const RUNTIME_NAME_LIMIT = 200
/** A process warning about dropped messages at most this often, per transport (ms). */
const WARNING_INTERVAL_MS = 60_000
/** (sender, reason) pairs remembered for the debug log, and distinct reasons counted per kind. */
const PAIR_LIMIT = 1024
const REASON_LIMIT = 256

/** JSON.parse that never throws: BAD_JSON for text that is not JSON (or not text). */
function parse(text) {
  try {
    return JSON.parse(text)
  } catch {
    return BAD_JSON
  }
}

// --- Values ---------------------------------------------------------------------------------

function isIndex(value) {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function isId(value) {
  return typeof value === 'string' && value.length > 0
}

function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A runtime name: subject-safe tokens (A-Za-z0-9_-) separated by single dots. */
function isRuntimeName(value) {
  if (typeof value !== 'string' || value.length === 0 || value.length > RUNTIME_NAME_LIMIT) return false
  let dot = true
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c === 46 /* . */) {
      if (dot) return false
      dot = true
      continue
    }
    dot = false
    const safe =
      (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 /* _ */ || c === 45 /* - */
    if (!safe) return false
  }
  return !dot
}

/** A value as a reason shows it: short, whatever a stranger sent. */
function show(value) {
  switch (typeof value) {
    case 'string':
      return value.length > 40 ? `${JSON.stringify(value.slice(0, 37))}...` : JSON.stringify(value)
    case 'number':
    case 'boolean':
      return String(value)
    case 'undefined':
      return 'missing'
    case 'object':
      break
    default:
      return `a ${typeof value}`
  }
  if (value === null) return 'null'
  return Array.isArray(value) ? `an array of ${value.length}` : 'an object'
}

/**
 * The route of the runtime whose inbox a reply subject `_HAPPEN.<route>.<secret>.<key>` is of
 * (never its secret), or null when the subject is no such thing.
 */
function runtimeOfReply(reply) {
  if (typeof reply !== 'string' || !reply.startsWith('_HAPPEN.')) return null
  const key = reply.lastIndexOf('.')
  const secret = reply.lastIndexOf('.', key - 1)
  if (secret <= 8 || !isToken(reply, secret + 1, key)) return null
  const route = reply.slice(8, secret)
  return isRuntimeName(route) ? route : null
}

/** Whether text[from, to) is one subject token of A-Za-z0-9_- (at most 64 characters). */
function isToken(text, from, to) {
  if (to <= from || to - from > 64) return false
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    const ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 95
    if (!ok) return false
  }
  return true
}

/** The branch a direct request's reply subject `<inbox><branch>` names, or -1. */
function branchOfReply(reply) {
  if (runtimeOfReply(reply) === null) return -1
  const key = reply.slice(reply.lastIndexOf('.') + 1)
  if (key.length === 0 || key.length > 16 || (key.length > 1 && key.charCodeAt(0) === 48)) return -1
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    if (c < 48 || c > 57) return -1
  }
  const branch = Number(key)
  return Number.isSafeInteger(branch) ? branch : -1
}

// --- Causal contexts and events --------------------------------------------------------------

/** The CAUSAL_FIELDS values at list[at] (see wire.js encodeCausal); list holds them all. */
function causalProblem(list, at) {
  const id = list[at]
  if (!isIndex(id) && !isId(id)) return `the event id is ${show(id)}, not a sequence number or a string`
  const sender = list[at + 1]
  if (sender !== null && !isId(sender)) return `the sender is ${show(sender)}, not a node id or null`
  const causation = list[at + 2]
  if (causation !== null && !isId(causation)) return `the causation id is ${show(causation)}, not a string or null`
  const correlation = list[at + 3]
  if (correlation !== 0 && !isId(correlation)) return `the correlation id is ${show(correlation)}, not 0 or a string`
  const path = list[at + 4]
  if (!Array.isArray(path)) return `the path is ${show(path)}, not an array of node ids`
  for (let i = 0; i < path.length; i++) {
    if (!isId(path[i])) return `path[${i}] is ${show(path[i])}, not a node id`
  }
  const timestamp = list[at + 5]
  if (typeof timestamp !== 'number' || !Number.isFinite(timestamp))
    return `the timestamp is ${show(timestamp)}, not a finite number`
  const extra = list[at + 6]
  return extra === 0 ? null : extraProblem(extra)
}

/** The causal context's `extra`: an object of traceparent, tracestate, origin, batch (each optional). */
function extraProblem(extra) {
  if (!isObject(extra)) return `the extra context is ${show(extra)}, not 0 or an object`
  const { traceparent, tracestate, origin, batch } = extra
  if (traceparent !== undefined && typeof traceparent !== 'string')
    return `traceparent is ${show(traceparent)}, not a string`
  if (tracestate !== undefined && typeof tracestate !== 'string')
    return `tracestate is ${show(tracestate)}, not a string`
  if (origin !== undefined) {
    if (!Array.isArray(origin) || origin.length !== 2 || !isRuntimeName(origin[0]) || !isIndex(origin[1]))
      return `origin is ${show(origin)}, not [runtime, branch]`
  }
  if (batch === undefined) return null
  if (!Array.isArray(batch)) return `the batch ids are ${show(batch)}, not an array`
  for (let i = 0; i < batch.length; i++) {
    const ids = batch[i]
    if (!Array.isArray(ids) || ids.length !== 3 || !isId(ids[0]) || (ids[1] !== null && !isId(ids[1])) || !isId(ids[2]))
      return `batch ids ${i} are ${show(ids)}, not [id, causation id or null, correlation id]`
  }
  return null
}

/** An event {type, payload?} or a batch of them; a batch's ids (extra.batch) are one per event. */
function eventProblem(input, extra) {
  const batch = extra === 0 || !isObject(extra) ? undefined : extra.batch
  if (!Array.isArray(input)) {
    if (!isObject(input)) return `the event is ${show(input)}, not an event object or a batch`
    if (!isId(input.type)) return `the event type is ${show(input.type)}, not a non-empty string`
    return batch === undefined ? null : 'a single event carries batch ids'
  }
  if (input.length === 0) return 'the batch is empty'
  if (batch === undefined) return `a batch of ${input.length} events carries no batch ids`
  if (batch.length !== input.length)
    return `a batch of ${input.length} events carries ${batch.length} batch ids, not one per event`
  for (let i = 0; i < input.length; i++) {
    const event = input[i]
    if (!isObject(event)) return `batch event ${i} is ${show(event)}, not an event object`
    if (!isId(event.type)) return `the type of batch event ${i} is ${show(event.type)}, not a non-empty string`
  }
  return null
}

// --- Requests, frames, fan frames -------------------------------------------------------------

/**
 * A request on a node's subject: header the causal values (then 1 when sent again), body the
 * event or batch. Both parsed.
 */
function checkRequest(header, body) {
  if (!Array.isArray(header)) return `the causal header is ${show(header)}, not an array`
  const n = header.length
  if (n !== CAUSAL_FIELDS && !(n === CAUSAL_FIELDS + 1 && header[CAUSAL_FIELDS] === 1))
    return `the causal header holds ${n} values, not ${CAUSAL_FIELDS} (then 1 when sent again)`
  return causalProblem(header, 0) ?? eventProblem(body, header[CAUSAL_FIELDS - 1])
}

/** Where the entry checked last ends (entryProblem's second result, without allocating a pair). */
let entryEnd = 0

/**
 * The frame entry at list[at]: k, k node ids, k branch ids, for a fan frame (`targets` > 0) k
 * indexes into its t, the causal values, the event. Sets entryEnd when good.
 */
function entryProblem(list, at, targets) {
  const perNode = targets > 0 ? 3 : 2
  const k = list[at]
  const left = list.length - at - 1
  const most = Math.floor((left - CAUSAL_FIELDS - 1) / perNode)
  if (most < 1) return `k is ${show(k)}, but only ${left} values follow: too few for an entry`
  if (!Number.isInteger(k) || k < 1 || k > most) return `k is ${show(k)}, not an integer from 1 to ${most}`
  const ids = at + 1
  for (let j = 0; j < k; j++) {
    if (!isId(list[ids + j])) return `node id ${j} is ${show(list[ids + j])}, not a non-empty string`
  }
  const branches = ids + k
  for (let j = 0; j < k; j++) {
    if (!isIndex(list[branches + j])) return `branch ${j} is ${show(list[branches + j])}, not a non-negative integer`
  }
  let causal = branches + k
  if (targets > 0) {
    for (let j = 0; j < k; j++) {
      const i = list[causal + j]
      if (!Number.isInteger(i) || i < 0 || i >= targets)
        return `the runtime index of node id ${j} is ${show(i)}, not an integer from 0 to ${targets - 1}`
    }
    causal += k
  }
  const problem =
    causalProblem(list, causal) ?? eventProblem(list[causal + CAUSAL_FIELDS], list[causal + CAUSAL_FIELDS - 1])
  if (problem !== null) return problem
  entryEnd = causal + CAUSAL_FIELDS + 1
  return null
}

/** The entries of a frame or fan frame body, one after another; `count` the header's (-1: none). */
function entriesProblem(list, count, targets) {
  if (!Array.isArray(list)) return `the body is ${show(list)}, not an array of entries`
  if (list.length === 0) return 'the body holds no entries'
  let entries = 0
  for (let at = 0; at < list.length; at = entryEnd) {
    const problem = entryProblem(list, at, targets)
    entries++
    if (problem !== null) return `entry ${entries}: ${problem}`
  }
  if (count >= 0 && count !== entries) return `the header counts ${count} entries, the body holds ${entries}`
  return null
}

/** The entry count a frame's header gives (decimal digits), or -1. */
function countOf(header) {
  if (typeof header !== 'string' || header.length === 0 || header.length > 15) return -1
  if (header.length > 1 && header.charCodeAt(0) === 48) return -1
  let count = 0
  for (let i = 0; i < header.length; i++) {
    const c = header.charCodeAt(i)
    if (c < 48 || c > 57) return -1
    count = count * 10 + (c - 48)
  }
  return count
}

/** A frame on happen.rt.<rt>: `list` its parsed body, `headerCount` its header as it came (decimal text). */
function checkFrame(list, headerCount) {
  const count = countOf(headerCount)
  if (count < 0) return `the header ${show(headerCount)} is not an entry count`
  return entriesProblem(list, count, 0)
}

/** A fan frame's parsed header: {t: [runtime names]}, t not empty. */
function checkFanHeader(header) {
  if (!isObject(header)) return `the header is ${show(header)}, not {t: [runtimes]}`
  const t = header.t
  if (!Array.isArray(t) || t.length === 0) return `t is ${show(t)}, not a non-empty array of runtimes`
  for (let i = 0; i < t.length; i++) {
    if (!isRuntimeName(t[i])) return `t[${i}] is ${show(t[i])}, not a runtime name`
  }
  return null
}

/** A fan frame's parsed body, `t` its header's runtimes (checked by checkFanHeader). */
function checkFan(t, list) {
  if (!Array.isArray(t) || t.length === 0) return `t is ${show(t)}, not a non-empty array of runtimes`
  return entriesProblem(list, -1, t.length)
}

// --- Replies and presence ---------------------------------------------------------------------

/** A reply item's error: {message: string, code: string, number or null, name: string}. */
function errorProblem(error) {
  if (!isObject(error)) return `the error is ${show(error)}, not {message, code, name}`
  if (typeof error.message !== 'string') return `the error message is ${show(error.message)}, not a string`
  const code = error.code
  if (code !== null && typeof code !== 'string' && typeof code !== 'number')
    return `the error code is ${show(code)}, not a string, number or null`
  if (typeof error.name !== 'string') return `the error name is ${show(error.name)}, not a string`
  return null
}

/** One reply item: [branch, 1, steps, value?] or [branch, 0, steps, error, step, retry (1 or 0)?]. */
function itemProblem(item, first) {
  if (!Array.isArray(item)) return `it is ${show(item)}, not an array`
  if (!isIndex(item[0])) return `the branch is ${show(item[0])}, not a non-negative integer`
  const steps = item[2]
  if (steps === 0) {
    if (first) return 'the first item has steps 0 (as the item before), but none comes before'
  } else if (Array.isArray(steps)) {
    for (let i = 0; i < steps.length; i++) {
      if (typeof steps[i] !== 'string') return `step ${i} is ${show(steps[i])}, not a string`
    }
  } else return `the steps are ${show(steps)}, not 0 or an array of strings`
  const n = item.length
  if (item[1] === 1) return n === 3 || n === 4 ? null : `a success holds ${n} values, not 3 or 4`
  if (item[1] !== 0) return `ok is ${show(item[1])}, not 1 or 0`
  if (n !== 5 && n !== 6) return `a failure holds ${n} values, not 5 or 6`
  if (typeof item[4] !== 'string') return `the failing step is ${show(item[4])}, not a string`
  if (n === 6 && item[5] !== 1 && item[5] !== 0) return `retry is ${show(item[5])}, not 1 or 0`
  return errorProblem(item[3])
}

/** A parsed reply message (on the reply subject of what it answers): {h: replying runtime, r: [items]}, r not empty. */
function checkReplies(message) {
  if (!isObject(message)) return `the message is ${show(message)}, not {h, r}`
  if (!isRuntimeName(message.h)) return `h is ${show(message.h)}, not a runtime name`
  const r = message.r
  if (!Array.isArray(r) || r.length === 0) return `r is ${show(r)}, not a non-empty array of replies`
  for (let i = 0; i < r.length; i++) {
    const problem = itemProblem(r[i], i === 0)
    if (problem !== null) return `reply ${i}: ${problem}`
  }
  return null
}

function idsProblem(ids, name) {
  if (!Array.isArray(ids)) return `${name} is ${show(ids)}, not an array of node ids`
  for (let i = 0; i < ids.length; i++) {
    if (!isId(ids[i])) return `${name}[${i}] is ${show(ids[i])}, not a node id`
  }
  return null
}

/**
 * A parsed presence message, exactly one of: {hello: true, rt}, {up: [ids], at: [numbers, as
 * many], first: boolean, rt}, {down: [ids], rt}; rt the sender's runtime name.
 */
function checkPresence(message) {
  if (!isObject(message)) return `the message is ${show(message)}, not an object`
  if (!isRuntimeName(message.rt)) return `rt is ${show(message.rt)}, not a runtime name`
  const { hello, up, down } = message
  const kinds = (hello !== undefined ? 1 : 0) + (up !== undefined ? 1 : 0) + (down !== undefined ? 1 : 0)
  if (kinds !== 1) return `it holds ${kinds} of hello, up and down, not exactly one`
  if (hello !== undefined) return hello === true ? null : `hello is ${show(hello)}, not true`
  if (down !== undefined) return idsProblem(down, 'down')
  const problem = idsProblem(up, 'up')
  if (problem !== null) return problem
  const at = message.at
  if (!Array.isArray(at) || at.length !== up.length) return `at is ${show(at)}, not ${up.length} claim times`
  for (let i = 0; i < at.length; i++) {
    if (typeof at[i] !== 'number' || !Number.isFinite(at[i])) return `at[${i}] is ${show(at[i])}, not a number`
  }
  if (typeof message.first !== 'boolean') return `first is ${show(message.first)}, not a boolean`
  return null
}

// --- Liveness checks and their answers (liveness.js), and the answers to claims (presence.js) ---

/** Whether `list` is an array of branch ids: non-negative safe integers. */
function isBranchList(list) {
  if (!Array.isArray(list)) return false
  for (let i = 0; i < list.length; i++) if (!isIndex(list[i])) return false
  return true
}

/** `body` parsed, when it is the JSON of an object; else null. */
function objectOf(body) {
  const value = parse(body)
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null
}

/** A check's {running, after}, or what is wrong with it (a string); `limit`: its characters at most. */
function readCheck(reply, body, limit) {
  if (reply.lastIndexOf('.') < 0) return 'no reply subject to answer on'
  if (body.length > limit) return `${body.length} characters, more than a check has`
  const check = objectOf(body)
  if (check === null) return 'not the JSON of an object'
  const { running, after = false } = check
  if (!isBranchList(running)) return '"running" is not a list of branch ids'
  if (typeof after !== 'boolean') return '"after" is not a boolean'
  return { running, after }
}

/** An answer's {lost, rt}, or what is wrong with it (a string); `asked`: its check's branch count. */
function readAnswer(header, body, asked) {
  if (header !== '') return `a status (${header.slice(0, 32)}), not an answer`
  const answer = objectOf(body)
  if (answer === null) return 'not the JSON of an object'
  const { lost, rt } = answer
  if (!isBranchList(lost)) return '"lost" is not a list of branch ids'
  if (lost.length > asked) return `${lost.length} branches lost of the ${asked} asked after`
  if (rt !== undefined && typeof rt !== 'string') return '"rt" is not a string'
  return { lost, rt }
}

// --- Dropped messages -------------------------------------------------------------------------

/** What a stranger sent, fit to print: at most `limit` characters, control characters as '?'. */
function clip(value, limit) {
  const text = typeof value === 'string' ? value : show(value)
  const cut = text.length > limit ? `${text.slice(0, limit - 3)}...` : text
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is replaced
  return cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?')
}

function logDrop(kind, subject, sender, reason) {
  debug.logTransport('nats', 'dropped a %s on %s from %s: %s', kind, subject, sender, reason)
}

function warnDrop(message) {
  process.emitWarning(message, { code: 'HAPPEN_DROPPED_MESSAGE' })
}

/**
 * The messages one transport refused: counted by kind and reason, logged once per (sender,
 * reason), a process warning at most once per `interval` ms. Options (for tests): now() (ms),
 * log(kind, subject, sender, reason) (default: NODE_DEBUG=happen's log, null when off),
 * warn(message), interval.
 */
class Drops {
  constructor(options = {}) {
    this.now = options.now ?? (() => Date.now())
    this.log = options.log !== undefined ? options.log : debug.enabled ? logDrop : null
    this.warn = options.warn ?? warnDrop
    this.interval = options.interval ?? WARNING_INTERVAL_MS
    this.total = 0
    /** By kind: a Map of reason -> count (at most REASON_LIMIT reasons, the rest as '(other reasons)'). */
    this.byKind = new Map()
    /** `sender\nreason` of the drops logged (at most PAIR_LIMIT; cleared when full). */
    this.logged = new Set()
    this.warnedAt = -Infinity
    this.sinceWarning = 0
    this.malformed = true
  }

  /**
   * A message of `kind` on `subject` (sent by runtime `sender`, null when unknown) refused for
   * `reason`; `malformed` false: refused for another reason than its shape (a limit).
   */
  drop(kind, subject, sender, reason, malformed = true) {
    this.malformed = malformed
    const where = clip(subject, 120)
    const who = sender === null || sender === undefined ? 'an unknown runtime' : `runtime ${clip(sender, 80)}`
    const why = clip(reason, 300)
    this._count(kind, why)
    if (this.log !== null) {
      const pair = `${who}\n${why}`
      if (!this.logged.has(pair)) {
        if (this.logged.size >= PAIR_LIMIT) this.logged.clear()
        this.logged.add(pair)
        this.log(kind, where, who, why)
      }
    }
    this.sinceWarning++
    const now = this.now()
    if (now - this.warnedAt < this.interval) return
    const count = this.sinceWarning
    const since = this.warnedAt === -Infinity ? '' : ' since the last warning'
    this.warnedAt = now
    this.sinceWarning = 0
    this.warn(
      `happen: dropped a ${this.malformed ? 'malformed ' : ''}NATS ${kind} on ${where} from ${who}: ${why} (${count} ${this.malformed ? 'malformed ' : ''}message${count === 1 ? '' : 's'} dropped${since}; NODE_DEBUG=happen logs each once per sender and reason)`,
    )
  }

  _count(kind, reason) {
    this.total++
    let reasons = this.byKind.get(kind)
    if (reasons === undefined) this.byKind.set(kind, (reasons = new Map()))
    const key = reasons.has(reason) || reasons.size < REASON_LIMIT ? reason : '(other reasons)'
    reasons.set(key, (reasons.get(key) ?? 0) + 1)
  }

  /** {total, byKind: {kind: count}, byReason: {kind: {reason: count}}}: a copy. */
  counts() {
    const byKind = {}
    const byReason = {}
    for (const [kind, reasons] of this.byKind) {
      let sum = 0
      for (const n of reasons.values()) sum += n
      // fromEntries: a reason is data, never a prototype to set.
      byKind[kind] = sum
      byReason[kind] = Object.fromEntries(reasons)
    }
    return { total: this.total, byKind, byReason }
  }
}

module.exports = {
  BAD_JSON,
  RUNTIME_NAME_LIMIT,
  WARNING_INTERVAL_MS,
  PAIR_LIMIT,
  REASON_LIMIT,
  parse,
  checkRequest,
  checkFrame,
  checkFanHeader,
  checkFan,
  checkReplies,
  checkPresence,
  readCheck,
  readAnswer,
  runtimeOfReply,
  branchOfReply,
  isRuntimeName,
  Drops,
}
