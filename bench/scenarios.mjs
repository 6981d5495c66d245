// happen setups for every scenario. Same shape as peers.mjs:
//   { cases: [{ name, fn }], teardown() }
// Each runtime is private to its scenario (initializeHappen) and shut down
// afterwards, so histories and nodes never leak between scenarios.
import { makeEvent, nodeIds, summarize, IN_FLIGHT } from './peers.mjs'

let happenModule = null
let happenLoadError = null

// The clean-peers child never loads happen (see index.mjs --peers-only).
export function disableHappen(reason) {
  happenModule = null
  happenLoadError = new Error(reason)
}

export async function loadHappen() {
  if (happenModule || happenLoadError) return happenModule
  try {
    happenModule = await import('happen')
    if (typeof happenModule.initializeHappen !== 'function') {
      throw new Error('happen does not export initializeHappen')
    }
  } catch (err) {
    happenModule = null
    happenLoadError = err
  }
  return happenModule
}

export const happenError = () => happenLoadError

function runtime(config) {
  return config ? happenModule.initializeHappen(config) : happenModule.initializeHappen()
}

// S1/S2/S6: one event to n nodes + return(), results keyed by node id.
export function happenFanOut(n, config, name = 'happen') {
  const rt = runtime(config)
  const nodes = rt.createNodeArray(nodeIds(n).map((id) => rt.createNode(id)))
  nodes.on('update', (_event, context) => ({ ok: true, node: context.node.id }))
  return {
    cases: [{ name, happen: true, fn: () => nodes.send(makeEvent()).return() }],
    teardown: () => rt.shutdown(),
  }
}

// S3: a batch of plain events to one node + return().
export function happenFanIn(batches) {
  const rt = runtime()
  const node = rt.createNode('sink')
  node.on('data-point', (events, _context) => summarize(events))
  return {
    cases: batches.map(([size, batch]) => ({
      size,
      name: 'happen',
      happen: true,
      fn: () => node.send(batch).return(),
    })),
    teardown: () => rt.shutdown(),
  }
}

// S4: a 3-step flow via node.process (the handler returns a next function twice).
export function happenFlow() {
  const rt = runtime()
  const node = rt.createNode('flow')
  const step3 = async (_event, context) => ({ done: true, node: context.node.id })
  const step2 = async (_event, context) => {
    context.step = 2
    return step3
  }
  node.on('update', async (_event, context) => {
    context.step = 1
    return step2
  })
  return {
    cases: [{ name: 'happen', happen: true, fn: () => node.process(makeEvent()) }],
    teardown: () => rt.shutdown(),
  }
}

// S5: one event to one node, sequential and 1,000 in flight.
export function happenSingle() {
  const rt = runtime()
  const node = rt.createNode('single')
  node.on('update', async (_event, _context) => ({ ok: true, node: 'single' }))
  const thr = () => {
    const ps = new Array(IN_FLIGHT)
    for (let i = 0; i < IN_FLIGHT; i++) ps[i] = node.process(makeEvent())
    return Promise.all(ps)
  }
  return {
    seq: [{ name: 'happen', happen: true, fn: () => node.process(makeEvent()) }],
    thr: [{ name: 'happen', happen: true, fn: thr }],
    teardown: () => rt.shutdown(),
  }
}
