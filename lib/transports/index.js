'use strict'

// The transports a runtime can be configured with, by config type (see lib/transport.js).
const { registerTransport } = require('../transport')
const nats = require('./nats/options')

registerTransport('nats', {
  checkOptions: nats.checkOptions,
  create(options, historySize) {
    const { NatsTransport } = require('./nats')
    return new NatsTransport(options, historySize)
  },
})
