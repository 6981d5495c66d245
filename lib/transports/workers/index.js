'use strict'

// Worker-thread nodes: `runtime.worker(module, { workerData, name, resourceLimits })` starts a
// worker thread whose happen runtime joins this runtime's core, runs `module` there, and
// resolves once the module's top level has run (its nodes are then reachable by id from every
// thread). `resourceLimits` bounds that thread's heap and stack (Node's Worker option): a
// thread that runs out ends alone, as any crashed worker does.
//
// In such a thread, `import { createNode, initializeHappen } from 'happen'` gives that joined
// runtime (initializeHappen() returns it rather than a runtime of its own), and
// `require('node:worker_threads').workerData` is the caller's `workerData`.
//
// The thread that started a worker watches it: when it ends (terminate(), process.exit() in
// it, an uncaught error), its place leaves the core, its nodes' waiting entries fail with
// NODE_LOST everywhere, and its nodes are gone. shutdown() of the starting runtime terminates
// the workers it started.

const { Worker } = require('node:worker_threads')
const { pathToFileURL } = require('node:url')
const path = require('node:path')
const native = require('../../native')
const { HappenError, invalidArg, shutdownError } = require('../../errors')
const { isPlainObject } = require('../../validate')
const { Runtime } = require('../../runtime')
const { ThreadTransport } = require('./transport')
const { rebuildError } = require('./wire')

const BOOTSTRAP = path.join(__dirname, 'bootstrap.mjs')

/** Each runtime's thread transport, made the first time it needs one. */
const transports = new WeakMap()

/** How many worker() calls of each runtime are still loading their module (their nodes may not exist yet). */
const loading = new WeakMap()

/** This thread's runtime when happen started the thread (see joinThread), else null. */
let joined = null

function transportOf(runtime) {
  let transport = transports.get(runtime)
  if (transport === undefined) {
    transport = new ThreadTransport()
    transports.set(runtime, transport)
    runtime._addTransport(transport)
  }
  return transport
}

/** Makes this thread's runtime, joined to the core its parent passed (bootstrap.mjs). */
function joinThread({ core, place, tracing, metrics }) {
  // A thread started by a runtime with `tracing: false` or `metrics: false` does not trace or count either.
  joined = new Runtime({ tracing: tracing !== false, metrics: metrics !== false }, { core, place })
  transportOf(joined)
  return joined
}

const joinedRuntime = () => joined

/** The ids of the nodes this thread's joined runtime holds. */
const joinedNodeIds = () => [...transportOf(joined).host.localIds()]

function moduleUrl(module) {
  if (module instanceof URL) return module.href
  if (typeof module !== 'string' || module.length === 0) {
    throw invalidArg('module', 'a module URL (new URL(..., import.meta.url)) or a file path', module)
  }
  if (/^(file|data):/.test(module)) return module
  return pathToFileURL(path.resolve(module)).href
}

const OPTIONS = ['workerData', 'name', 'resourceLimits']

/** Node's Worker resourceLimits happen passes on, each a positive number of megabytes. */
const RESOURCE_LIMITS = ['maxOldGenerationSizeMb', 'maxYoungGenerationSizeMb', 'codeRangeSizeMb', 'stackSizeMb']

/**
 * The smallest stackSizeMb accepted. Below about 0.25 MB Node cannot start the thread, and
 * below about 0.2 MB that failure ends the whole process (Node 20: exit code 6); 0.5 MB leaves
 * room for happen's bootstrap and a module's top level.
 */
const MIN_STACK_MB = 0.5

function checkOptions(options) {
  if (options === undefined) return {}
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArg('options', 'an object { workerData, name, resourceLimits }', options)
  }
  for (const key of Object.keys(options)) {
    if (!OPTIONS.includes(key)) throw invalidArg(`options.${key}`, `one of ${OPTIONS.join(', ')}`, options[key])
  }
  if (options.name !== undefined && typeof options.name !== 'string')
    throw invalidArg('options.name', 'a string', options.name)
  const { workerData, name } = options
  const resourceLimits = options.resourceLimits === undefined ? undefined : checkResourceLimits(options.resourceLimits)
  return { workerData, name, resourceLimits }
}

/** The limits as checked, copied (what Node's Worker gets is what was checked). */
function checkResourceLimits(limits) {
  if (!isPlainObject(limits)) {
    throw invalidArg('options.resourceLimits', `an object of ${RESOURCE_LIMITS.join(', ')}`, limits)
  }
  const checked = {}
  for (const key of Object.keys(limits)) {
    const name = `options.resourceLimits.${key}`
    const value = limits[key]
    if (!RESOURCE_LIMITS.includes(key)) throw invalidArg(name, `one of ${RESOURCE_LIMITS.join(', ')}`, value)
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw invalidArg(name, 'a positive finite number of megabytes', value)
    }
    if (key === 'stackSizeMb' && value < MIN_STACK_MB) {
      throw invalidArg(name, `at least ${MIN_STACK_MB} (a smaller stack can end the whole process)`, value)
    }
    checked[key] = value
  }
  return checked
}

/** Starts a worker thread running `module` with nodes joined to `runtime`'s core. */
function startWorker(runtime, module, options) {
  try {
    const url = moduleUrl(module)
    const { workerData, name, resourceLimits } = checkOptions(options)
    const transport = transportOf(runtime)
    if (transport.host.closed) throw shutdownError('worker')
    const place = native.joinCore(transport.core)
    const started = launch(transport, place, url, { workerData, name, resourceLimits })
    loading.set(runtime, (loading.get(runtime) ?? 0) + 1)
    const loaded = () => loading.set(runtime, loading.get(runtime) - 1)
    started.then(loaded, loaded)
    return started
  } catch (error) {
    return Promise.reject(error)
  }
}

function launch(transport, place, url, { workerData, name, resourceLimits }) {
  const { core } = transport
  let thread
  try {
    thread = new Worker(BOOTSTRAP, {
      workerData: {
        happen: {
          core,
          place,
          module: url,
          tracing: transport.host._runtime._tracing !== null,
          metrics: transport.host._runtime._metrics !== null,
        },
        user: workerData,
      },
      name,
      resourceLimits,
    })
  } catch (error) {
    native.leavePlace(core, place)
    throw error.name === 'DataCloneError'
      ? new HappenError('NOT_SERIALIZABLE', `options.workerData cannot cross to another thread: ${error.message}`)
      : error
  }
  let failure = null
  let ended
  const gone = new Promise((resolve) => (ended = resolve))
  const record = {
    thread,
    waiting: 0,
    terminate: () => thread.terminate().then(() => gone),
  }
  transport.workers.set(place, record)
  thread.on('error', (error) => {
    failure = error
  })
  thread.once('exit', (code) => {
    // Answers the thread posted before it ended are taken first (they are already queued).
    setImmediate(() => {
      native.leavePlace(core, place)
      transport.workers.delete(place)
      const reason = failure ?? (code === 0 ? null : `exit code ${code}`)
      transport.placeLost(place, reason)
      transport.announceLost(place, reason instanceof Error ? `${reason.name}: ${reason.message}` : reason)
      ended()
    })
  })
  return new Promise((resolve, reject) => {
    const started = (message) => {
      thread.off('exit', early)
      thread.off('messageerror', unreadable)
      if (message.failed !== undefined) {
        reject(rebuildError(message.failed, null))
        thread.terminate()
        return
      }
      if (record.waiting === 0) thread.unref()
      resolve({ threadId: thread.threadId, nodes: message.nodes, terminate: record.terminate })
    }
    const early = (code) => {
      thread.off('message', started)
      reject(
        failure ?? new HappenError('NODE_LOST', `The worker for ${url} exited (code ${code}) before its module ran`),
      )
    }
    // The thread's first message, when this thread cannot decode it (too deep for its stack).
    const unreadable = (error) => {
      thread.off('message', started)
      thread.off('exit', early)
      reject(
        new HappenError(
          'NOT_SERIALIZABLE',
          `The worker for ${url} sent what this thread cannot decode (${error.name}: ${error.message})`,
        ),
      )
      thread.terminate()
    }
    thread.once('message', started)
    thread.once('messageerror', unreadable)
    thread.once('exit', early)
  })
}

Runtime.prototype.worker = function worker(module, options) {
  return startWorker(this, module, options)
}

/** How many worker() calls of this runtime are still loading (what an UNKNOWN_NODE error hints at). */
Runtime.prototype._workersLoading = function workersLoading() {
  return loading.get(this) ?? 0
}

module.exports = { startWorker, joinThread, joinedRuntime, joinedNodeIds }
