'use strict'

// happen: the CommonJS entry. `index.mjs` re-exports these for ESM.
const { initializeHappen, createNodeArray, HappenError } = require('./lib/runtime')

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
}
