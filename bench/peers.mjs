// Peer implementations for every scenario. Each setup returns
//   { cases: [{ name, fn }], teardown() }
// where fn() performs ONE operation of the scenario (sync or async) and
// returns what the caller would get (a keyed object for fan-outs).
//
// Work per receiver is the same everywhere: build one small object
// `{ ok: true, node: id }` (fan-out / single event) or summarise the batch
// with `summarize(events)` (fan-in).
import { EventEmitter } from 'node:events'
import EventEmitter3 from 'eventemitter3'
import Emittery from 'emittery'
import moleculer from 'moleculer'

const { ServiceBroker } = moleculer

export const nodeIds = (n) => Array.from({ length: n }, (_, i) => `n${i}`)

// A fresh event per operation for every implementation (equal cost).
export const makeEvent = () => ({ type: 'update', payload: { data: 1 } })

// Batch of `size` plain { type, payload } events (built once, reused).
export const makeBatch = (size) =>
  Array.from({ length: size }, (_, i) => ({ type: 'data-point', payload: { value: i } }))

// Same trivial per-batch work for every fan-in implementation.
export function summarize(events) {
  let sum = 0
  for (let i = 0; i < events.length; i++) sum += events[i].payload.value
  return { count: events.length, sum }
}

async function startBroker(services) {
  const broker = new ServiceBroker({
    logger: false,
    metrics: false,
    tracing: false,
    internalServices: false,
    nodeID: 'bench',
  })
  for (const s of services) broker.createService(s)
  await broker.start()
  return broker
}

// ---------------------------------------------------------------- S1/S2 fan-out

export async function fanOutPeers(n) {
  const ids = nodeIds(n)

  // plain JS loop: call each receiver, collect into an object keyed by receiver
  const syncReceivers = ids.map((id) => ({ id, fn: (_e) => ({ ok: true, node: id }) }))
  const plainLoop = () => {
    const e = makeEvent()
    const out = {}
    for (let i = 0; i < syncReceivers.length; i++) out[syncReceivers[i].id] = syncReceivers[i].fn(e)
    return out
  }

  // async functions + Promise.all
  const asyncReceivers = ids.map((id) => async (_e) => ({ ok: true, node: id }))
  const asyncAll = async () => {
    const e = makeEvent()
    const values = await Promise.all(asyncReceivers.map((fn) => fn(e)))
    const out = {}
    for (let i = 0; i < ids.length; i++) out[ids[i]] = values[i]
    return out
  }

  // node:events — listeners write their result into a collector passed along
  const ee = new EventEmitter()
  ee.setMaxListeners(0)
  for (const id of ids)
    ee.on('update', (_e, out) => {
      out[id] = { ok: true, node: id }
    })
  const nodeEvents = () => {
    const out = {}
    ee.emit('update', makeEvent(), out)
    return out
  }

  // eventemitter3 — same shape
  const ee3 = new EventEmitter3()
  for (const id of ids)
    ee3.on('update', (_e, out) => {
      out[id] = { ok: true, node: id }
    })
  const eventEmitter3 = () => {
    const out = {}
    ee3.emit('update', makeEvent(), out)
    return out
  }

  // emittery — emit() resolves once every (async-wrapped) listener has run
  const em = new Emittery()
  for (const id of ids)
    em.on('update', ({ out }) => {
      out[id] = { ok: true, node: id }
    })
  const emittery = async () => {
    const out = {}
    await em.emit('update', { event: makeEvent(), out })
    return out
  }

  // Moleculer 0.14 local broker, one service per receiver, mcall keyed form
  const broker = await startBroker(
    ids.map((id) => ({
      name: id,
      actions: {
        update() {
          return { ok: true, node: id }
        },
      },
    })),
  )
  const actions = ids.map((id) => `${id}.update`)
  const mcall = () => {
    const e = makeEvent()
    const def = {}
    for (let i = 0; i < ids.length; i++) def[ids[i]] = { action: actions[i], params: e }
    return broker.mcall(def)
  }

  return {
    cases: [
      { name: 'plain JS loop', fn: plainLoop },
      { name: 'async fns + Promise.all', fn: asyncAll },
      { name: 'node:events', fn: nodeEvents },
      { name: 'eventemitter3', fn: eventEmitter3 },
      { name: 'emittery', fn: emittery },
      { name: 'moleculer mcall', fn: mcall },
    ],
    teardown: () => broker.stop(),
  }
}

// ---------------------------------------------------------------- S3 fan-in

export async function fanInPeers(batches) {
  const broker = await startBroker([
    {
      name: 'sink',
      actions: {
        batch(ctx) {
          return summarize(ctx.params)
        },
      },
    },
  ])
  const cases = []
  for (const [size, batch] of batches) {
    cases.push({ size, name: 'plain loop over batch', fn: () => summarize(batch) })
    cases.push({ size, name: 'moleculer call(array)', fn: () => broker.call('sink.batch', batch) })
  }
  return { cases, teardown: () => broker.stop() }
}

// ---------------------------------------------------------------- S4 3-step flow

export async function flowPeers() {
  const s1 = async (_e, ctx) => {
    ctx.step = 1
  }
  const s2 = async (_e, ctx) => {
    ctx.step = 2
  }
  const s3 = async (_e, ctx) => ({ done: true, node: ctx.node.id })
  const handWritten = async () => {
    const e = makeEvent()
    const ctx = { node: { id: 'flow' } }
    await s1(e, ctx)
    await s2(e, ctx)
    return await s3(e, ctx)
  }
  // Moleculer: the same three awaited steps inside one action.
  const broker = await startBroker([
    {
      name: 'flow',
      actions: {
        async update(ctx) {
          const state = { node: { id: 'flow' } }
          await s1(ctx.params, state)
          await s2(ctx.params, state)
          return await s3(ctx.params, state)
        },
      },
    },
  ])
  return {
    cases: [
      { name: 'hand-written async steps', fn: handWritten },
      { name: 'moleculer call (3 awaited steps)', fn: () => broker.call('flow.update', makeEvent()) },
    ],
    teardown: () => broker.stop(),
  }
}

// ---------------------------------------------------------------- S5 single event

export const IN_FLIGHT = 1000

export async function singlePeers() {
  const fn = async (_e) => ({ ok: true, node: 'single' })
  const seq = async () => await fn(makeEvent())
  const thr = async () => {
    const ps = new Array(IN_FLIGHT)
    for (let i = 0; i < IN_FLIGHT; i++) ps[i] = fn(makeEvent())
    return Promise.all(ps)
  }
  const broker = await startBroker([
    {
      name: 'single',
      actions: {
        async update() {
          return { ok: true, node: 'single' }
        },
      },
    },
  ])
  const call = () => broker.call('single.update', makeEvent())
  const callMany = () => {
    const ps = new Array(IN_FLIGHT)
    for (let i = 0; i < IN_FLIGHT; i++) ps[i] = call()
    return Promise.all(ps)
  }
  return {
    seq: [
      { name: 'plain await async fn', fn: seq },
      { name: 'moleculer call', fn: call },
    ],
    thr: [
      { name: 'Promise.all async fn', fn: thr },
      { name: 'moleculer call x1000', fn: callMany },
    ],
    teardown: () => broker.stop(),
  }
}
