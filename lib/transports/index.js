'use strict'

// The transports a runtime can be configured with, by config type.
const { registerTransport } = require('../transport')

registerTransport('nats', (options, historySize) => {
  const { NatsTransport } = require('../nats')
  return new NatsTransport(options, historySize)
})
