'use strict'

// NODE_DEBUG=happen: what happen does, written to stderr through Node's util.debuglog, so that
// a silent null or a missing result can be explained: each send, each target where no handler
// matched, each failed flow, and the transport's events. Off (the default), each call site
// costs one boolean test: `enabled` is read once, as util.debuglog reads NODE_DEBUG once.

const { debuglog } = require('node:util')

const log = debuglog('happen')
const enabled = log.enabled

const quote = (id) => (id === null ? 'outside any node' : `'${id}'`)

/** One send: its type, first event id, sender and targets. */
function logSend(senderId, type, id, targets, count) {
  const batch = count === 1 ? '' : ` (batch of ${count})`
  const to = targets.length === 0 ? 'no node' : targets.map((n) => `'${n.id}'`).join(', ')
  log("send '%s' %s%s from %s to %s", type, id, batch, quote(senderId), to)
}

/** A target where no handler's pattern matched: its result is null. */
function logUnmatched(type, nodeId) {
  log("no handler of '%s' at node '%s' (its result is null)", type, nodeId)
}

function logFailure(nodeId, type, step, message) {
  log("flow of node '%s' failed on '%s' at step '%s': %s", nodeId, type, step, message)
}

/** A transport's event, e.g. a connection state or nodes announced elsewhere. */
function logTransport(transport, format, ...args) {
  log(`${transport}: ${format}`, ...args)
}

module.exports = { enabled, logSend, logUnmatched, logFailure, logTransport }
