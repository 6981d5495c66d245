'use strict'

// The NATS transport's config (index.d.ts NatsTransportConfig): known keys of the right types,
// a non-empty list of server URLs; anything else is a TypeError naming the field.
const { invalidArg, outOfRange } = require('../../errors')

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
  maxInFlight: 'positive',
  maxInFlightBytes: 'positive',
}

/** What a number option of each kind must be, as errors say it. */
const EXPECTED = {
  ms: 'a positive integer number of milliseconds',
  count: 'a non-negative integer',
  positive: 'a positive integer',
}

function checkNatsOptions(transport) {
  for (const key of Object.keys(transport)) {
    const kind = NATS_OPTIONS[key]
    const value = transport[key]
    const name = `config.transport.${key}`
    if (kind === undefined)
      throw invalidArg(name, `one of the NATS transport's options (${Object.keys(NATS_OPTIONS).join(', ')})`, key)
    if (value === undefined || kind === 'array') continue
    if (kind === 'string' || kind === 'boolean') {
      if (typeof value !== kind) throw invalidArg(name, `of type ${kind}`, value)
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
    throw invalidArg('config.transport.pass', 'given together with config.transport.user', transport.pass)
  }
  if ((transport.tlsCertFile === undefined) !== (transport.tlsKeyFile === undefined)) {
    throw invalidArg(
      'config.transport.tlsKeyFile',
      'given together with config.transport.tlsCertFile',
      transport.tlsKeyFile,
    )
  }
}

function checkOptions(transport) {
  const { servers } = transport
  if (
    !Array.isArray(servers) ||
    servers.length === 0 ||
    servers.some((s) => typeof s !== 'string' || !/^[a-z]+:\/\/[^/]+/i.test(s))
  ) {
    throw invalidArg(
      'config.transport.servers',
      'a non-empty array of server URLs such as "nats://127.0.0.1:4222"',
      servers,
    )
  }
  checkNatsOptions(transport)
}

module.exports = { checkOptions }
