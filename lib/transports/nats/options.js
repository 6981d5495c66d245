'use strict'

// The NATS transport's config (index.d.ts NatsTransportConfig): known keys of the right types,
// a non-empty list of server URLs; anything else is a TypeError naming the field.
// - Credentials written in a server URL are used as the NATS clients use them (nats.go, the
//   `nats` CLI): `nats://user:pass@host` gives user and password, `nats://token@host` a token,
//   both percent-decoded. The connection gets the URLs without them (serverUrls().addresses);
//   messages show the URLs redacted (`nats://user:***@host`, `nats://***@host`).
// - One connection has one identity: the URLs that carry credentials carry the same ones (a URL
//   without any uses them too), and `user`/`pass`/`token` given as options agree with them.
// - No error shows a password, token or nkey seed: only its type.
const { invalidArg, outOfRange } = require('../../errors')
const { DEFAULT_LIMITS } = require('./limits')

/** The NATS transport's options (index.d.ts NatsTransportConfig): known keys, right types. */
const NATS_OPTIONS = {
  type: 'string',
  servers: 'array',
  name: 'string',
  user: 'string',
  pass: 'string',
  token: 'string',
  nkey: 'string',
  credentialsFile: 'string',
  tls: 'boolean',
  tlsCaFile: 'string',
  tlsCertFile: 'string',
  tlsKeyFile: 'string',
  connectTimeout: 'ms',
  maxReconnects: 'count',
  heartbeat: 'ms',
  frames: 'boolean',
  fan: 'boolean',
  scope: 'token',
  limits: 'limits',
  maxInFlight: 'positive',
  maxInFlightBytes: 'positive',
}

/** What a number option of each kind must be, as errors say it. */
const EXPECTED = {
  ms: 'a positive integer number of milliseconds',
  count: 'a non-negative integer',
  positive: 'a positive integer',
}

/** Options whose values no message shows. */
const SECRETS = new Set(['pass', 'token', 'nkey'])

/** Like invalidArg, for a secret: what came is named by its type alone. */
function invalidSecret(name, expected, actual) {
  const received = actual === undefined ? 'undefined' : `type ${typeof actual} (not shown: a secret)`
  const error = new TypeError(`The "${name}" argument must be ${expected}. Received ${received}`)
  error.code = 'ERR_INVALID_ARG_TYPE'
  return error
}

/** Percent-decoded; null when the encoding is broken. */
function decoded(text) {
  try {
    return decodeURIComponent(text)
  } catch {
    return null
  }
}

/**
 * A server URL's parts: `address`, the URL without credentials (what the connection gets);
 * `shown`, the URL with its password or token as `***`; `credentials`, {user, pass} or {token}
 * (percent-decoded), or null; `problem`, what is wrong with its credentials, or null. null when
 * it is no `<scheme>://<host>…` URL at all.
 */
function splitUrl(url) {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/is.exec(url)
  if (match === null) return null
  const [, scheme, authority, rest] = match
  if (rest.includes('@')) {
    const problem = "credentials without '/', '?' or '#' (percent-encode them)"
    return { address: '', shown: `${scheme}***`, credentials: null, problem }
  }
  const at = authority.lastIndexOf('@')
  const host = authority.slice(at + 1) + rest
  if (at < 0) return { address: scheme + host, shown: url, credentials: null, problem: null }
  const info = authority.slice(0, at)
  const colon = info.indexOf(':')
  const shown = `${scheme}${colon < 0 ? '' : info.slice(0, colon + 1)}***@${host}`
  const user = colon < 0 ? undefined : decoded(info.slice(0, colon))
  const secret = decoded(info.slice(colon + 1))
  let problem = null
  if (colon < 0 && (secret === null || secret === '')) problem = "a token before the '@' (percent-encoded)"
  else if (colon >= 0 && (user === null || user === '' || secret === null))
    problem = "a user name and password before the '@' (percent-encoded)"
  const credentials = colon < 0 ? { token: secret } : { user, pass: secret }
  return { address: scheme + host, shown, credentials: problem === null ? credentials : null, problem }
}

const sameCredentials = (a, b) => a.user === b.user && a.pass === b.pass && a.token === b.token

/**
 * The servers of a checked config: `addresses` (without credentials), `shown` (redacted),
 * `credentials` ({user, pass} or {token} from the URLs, or null).
 */
function serverUrls(servers) {
  const urls = servers.map(splitUrl)
  const first = urls.find((url) => url.credentials !== null)
  return {
    addresses: urls.map((url) => url.address),
    shown: urls.map((url) => url.shown),
    credentials: first === undefined ? null : first.credentials,
  }
}

/**
 * Throws a TypeError naming the server URL that is none, or whose credentials are malformed
 * or disagree with another URL's or with config.transport.user, pass and token.
 */
function checkServers(transport) {
  const { servers } = transport
  const expected = 'a non-empty array of server URLs such as "nats://127.0.0.1:4222"'
  if (!Array.isArray(servers) || servers.length === 0) throw invalidArg('config.transport.servers', expected, servers)
  let first = null
  let firstName = ''
  for (let i = 0; i < servers.length; i++) {
    const name = `config.transport.servers[${i}]`
    const url = typeof servers[i] === 'string' ? splitUrl(servers[i]) : null
    if (url !== null && url.problem !== null) throw invalidArg(name, `a server URL with ${url.problem}`, url.shown)
    if (url === null || !/^[a-z]+:\/\/[^/]+/i.test(url.address))
      throw invalidArg('config.transport.servers', expected, servers)
    if (url.credentials === null) continue
    if (first === null) {
      first = url
      firstName = name
    } else if (!sameCredentials(url.credentials, first.credentials)) {
      throw invalidArg(
        name,
        `a URL with the credentials of ${firstName} or none (one connection, one identity)`,
        url.shown,
      )
    }
  }
  const given = transport.user !== undefined || transport.pass !== undefined || transport.token !== undefined
  if (first !== null && given && !sameCredentials(first.credentials, transport)) {
    throw invalidArg(
      firstName,
      'a URL whose credentials agree with config.transport.user, pass and token (give them one way)',
      first.shown,
    )
  }
}

function checkNatsOptions(transport) {
  for (const key of Object.keys(transport)) {
    const kind = NATS_OPTIONS[key]
    const value = transport[key]
    const name = `config.transport.${key}`
    if (kind === undefined)
      throw invalidArg(name, `one of the NATS transport's options (${Object.keys(NATS_OPTIONS).join(', ')})`, key)
    if (value === undefined || kind === 'array') continue
    if (kind === 'limits') {
      checkLimits(value)
    } else if (kind === 'token') {
      if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(value))
        throw invalidArg(name, 'a subject token of 1 to 64 letters, digits, "_" or "-"', value)
    } else if (kind === 'string' || kind === 'boolean') {
      if (typeof value !== kind)
        throw SECRETS.has(key)
          ? invalidSecret(name, `of type ${kind}`, value)
          : invalidArg(name, `of type ${kind}`, value)
    } else {
      if (typeof value !== 'number') throw invalidArg(name, 'of type number', value)
      const ok =
        kind === 'ms'
          ? Number.isInteger(value) && value >= 1 && value <= 2 ** 31 - 1
          : kind === 'positive'
            ? Number.isSafeInteger(value) && value >= 1
            : Number.isInteger(value) && value >= 0 && value <= 2 ** 32 - 1
      if (!ok) throw outOfRange(name, EXPECTED[kind], value)
    }
  }
  if ((transport.user === undefined) !== (transport.pass === undefined)) {
    throw invalidSecret('config.transport.pass', 'given together with config.transport.user', transport.pass)
  }
  if ((transport.tlsCertFile === undefined) !== (transport.tlsKeyFile === undefined)) {
    throw invalidArg(
      'config.transport.tlsKeyFile',
      'given together with config.transport.tlsCertFile',
      transport.tlsKeyFile,
    )
  }
}

/** `limits`: an object of known keys (limits.js DEFAULT_LIMITS), each a positive integer. */
function checkLimits(limits) {
  if (typeof limits !== 'object' || limits === null || Array.isArray(limits))
    throw invalidArg('config.transport.limits', 'an object', limits)
  for (const key of Object.keys(limits)) {
    const name = `config.transport.limits.${key}`
    if (!Object.hasOwn(DEFAULT_LIMITS, key))
      throw invalidArg(name, `one of the limits (${Object.keys(DEFAULT_LIMITS).join(', ')})`, key)
    const value = limits[key]
    if (value === undefined) continue
    if (!Number.isSafeInteger(value) || value < 1) throw outOfRange(name, 'a positive integer', value)
  }
}

function checkOptions(transport) {
  checkNatsOptions(transport)
  checkServers(transport)
}

module.exports = { checkOptions, serverUrls }
