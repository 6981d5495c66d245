'use strict'

// What the NATS transport could not send, and why: `NODE_DEBUG=happen`.
const { debuglog } = require('node:util')

const debug = debuglog('happen')

module.exports = { debug }
