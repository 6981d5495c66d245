'use strict'

// happen: the CommonJS entry. `index.mjs` re-exports these for ESM.
const runtimeModule = require('./lib/runtime')
const { createNodeArray, HappenError } = runtimeModule
const threads = require('./lib/transports/workers')

/** A new runtime; in a worker thread happen started, that thread's runtime (joined to its parent's core). */
function initializeHappen(config) {
  return threads.joinedRuntime() || runtimeModule.initializeHappen(config)
}

let defaultRuntime = null

/** The runtime behind the top-level functions, made on first use. */
function runtime() {
  return defaultRuntime || (defaultRuntime = initializeHappen())
}

module.exports = {
  initializeHappen,
  createNodeArray,
  HappenError,
  createNode: (id, options) => runtime().createNode(id, options),
  node: (id) => runtime().node(id),
  trace: (id) => runtime().trace(id),
  shutdown: () => runtime().shutdown(),
  worker: (module, options) => runtime().worker(module, options),
}
