// The entry point of a worker thread that happen starts (see index.js): joins the parent's
// core, hands the caller's workerData to the module, runs the module, and tells the parent
// once its top level has run (or why it failed). The open port to the parent keeps the thread
// alive until it is terminated; the parent's process does not wait for it.
import { createRequire, syncBuiltinESMExports } from 'node:module'

const require = createRequire(import.meta.url)
const threads = require('node:worker_threads')
const { happen: join, user } = threads.workerData
threads.workerData = user
syncBuiltinESMExports()

const { joinThread, joinedNodeIds } = require('./index.js')
const { describeError } = require('./wire.js')
joinThread(join)
const port = threads.parentPort
port.on('message', () => {})
try {
  await import(join.module)
  port.postMessage({ nodes: joinedNodeIds() })
} catch (error) {
  port.postMessage({ failed: describeError(error) })
}
