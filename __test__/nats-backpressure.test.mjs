// Backpressure over NATS (issue 21): a runtime bounds what its sends hold waiting for replies
// (maxInFlight branches, maxInFlightBytes); past it a send is held back in order, `await send()`
// resolves once it is let go, and a host serving a backlog keeps its event loop answering.
// Real host processes (nats/backpressure-host.mjs) on the server HAPPEN_NATS_URL names.
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createNodeArray, initializeHappen } from 'happen'
import { rejection } from './helpers.mjs'
import { NATS_URL, freePort, skipMessage, sleep, spawnReady, stopAll } from './nats/harness.mjs'

if (!NATS_URL) console.warn(`skipping the NATS backpressure tests: ${skipMessage}`)

const hostScript = fileURLToPath(new URL('./nats/backpressure-host.mjs', import.meta.url))
const natsConfig = (extra = {}) => ({ transport: { type: 'nats', servers: [NATS_URL], heartbeat: 200, ...extra } })
/** Node ids of this run: other runs may share the server. */
const idsOf = (name, count = 2) => Array.from({ length: count }, (_, i) => `bp-${process.pid}-${name}${i}`)

/** A backpressure host serving `ids`, with `ask(command)` resolving to its answer line's text. */
async function startHost(ids) {
  const child = await spawnReady(hostScript, [NATS_URL, ids.join(',')], ids)
  const waiting = new Map()
  let line = ''
  child.stdout.on('data', (chunk) => {
    line += chunk
    for (let cut = line.indexOf('\n'); cut >= 0; cut = line.indexOf('\n')) {
      const text = line.slice(0, cut)
      line = line.slice(cut + 1)
      const space = text.indexOf(' ')
      const key = text.slice(0, space) === 'pong' ? text : text.slice(0, space)
      waiting.get(key)?.(text.slice(space + 1))
      waiting.delete(key)
    }
  })
  const ask = (command, key) =>
    new Promise((resolve) => {
      waiting.set(key, resolve)
      child.stdin.write(`${command}\n`)
    })
  return {
    child,
    /** Its event loop's delay and what it served since the last call. */
    lag: async () => JSON.parse(await ask('lag', 'lag')),
    /** How long (ms) a line on its stdin takes to be answered. */
    ping: async (n) => {
      const sent = performance.now()
      await ask(`ping ${n}`, `pong ${n}`)
      return performance.now() - sent
    },
  }
}

/** Counts each target's entries: what came back right, and the codes of the others. */
function tally(entries, n, counts) {
  for (const [id, entry] of Object.entries(entries)) {
    if (entry.status === 'fulfilled' && entry.value.by === id && entry.value.n === n) counts.ok++
    else counts.wrong.push(entry.reason?.code ?? JSON.stringify(entry.value))
  }
}

describe.skipIf(!NATS_URL)('NATS backpressure: a bound on what waits for replies', () => {
  afterAll(() => stopAll())

  it('an awaiting producer sending a burst 50 times its bound: everything arrives, and no more than the bound runs at the receiver at once', async () => {
    const ids = idsOf('burst')
    const host = await startHost(ids)
    // 8 fan-outs of 2 branches in flight at most.
    const rt = await initializeHappen(natsConfig({ maxInFlight: 16 }))
    try {
      const nodes = createNodeArray(ids.map((id) => rt.node(id)))
      await host.lag()
      const counts = { ok: 0, wrong: [] }
      const results = []
      for (let n = 0; n < 400; n++) {
        const sending = nodes.send({ type: 'gauge', payload: { n, ms: 5 } })
        results.push(sending.return({ settled: true }).then((entries) => tally(entries, n, counts)))
        await sending
      }
      await Promise.all(results)
      expect(counts).toEqual({ ok: 800, wrong: [] })
      const { served, mostRunning } = await host.lag()
      expect(served).toBe(800)
      // The bound was reached (the producer was faster than the receiver) and never passed.
      expect(mostRunning).toBe(16)
    } finally {
      await rt.shutdown()
    }
  })

  it('a caller that does not await: its sends wait in its own process and leave in order as replies free room; nothing fails', async () => {
    const ids = idsOf('loose')
    const host = await startHost(ids)
    const rt = await initializeHappen(natsConfig({ maxInFlight: 16 }))
    try {
      const nodes = createNodeArray(ids.map((id) => rt.node(id)))
      await host.lag()
      const counts = { ok: 0, wrong: [] }
      const order = []
      const results = Array.from({ length: 400 }, (_, n) => {
        const sending = nodes.send({ type: 'gauge', payload: { n, ms: 5 } })
        sending.then(() => order.push(n))
        return sending.return({ settled: true }).then((entries) => tally(entries, n, counts))
      })
      await Promise.all(results)
      expect(counts).toEqual({ ok: 800, wrong: [] })
      expect(order).toEqual(Array.from({ length: 400 }, (_, n) => n))
      expect((await host.lag()).mostRunning).toBe(16)
    } finally {
      await rt.shutdown()
    }
  })

  it('`await send()` of a send past the bound resolves once replies free room; its return() works before that', async () => {
    const ids = idsOf('await')
    await startHost(ids)
    const rt = await initializeHappen(natsConfig({ maxInFlight: 2 }))
    try {
      const nodes = createNodeArray(ids.map((id) => rt.node(id)))
      const first = nodes.send({ type: 'gauge', payload: { n: 1, ms: 400 } })
      await first
      const second = nodes.send({ type: 'gauge', payload: { n: 2, ms: 0 } })
      const secondResults = second.return()
      // A timeout counts from the send: the time held back is part of it.
      await expect(second.return({ timeout: 50 })).rejects.toMatchObject({ code: 'TIMEOUT', pending: ids })
      let admittedAt = 0
      let firstDoneAt = 0
      second.then(() => (admittedAt = performance.now()))
      first.return().then(() => (firstDoneAt = performance.now()))
      await sleep(150)
      expect(admittedAt).toBe(0)
      expect(await secondResults).toEqual({ [ids[0]]: { by: ids[0], n: 2 }, [ids[1]]: { by: ids[1], n: 2 } })
      expect(firstDoneAt).toBeGreaterThan(0)
      expect(admittedAt).toBeGreaterThanOrEqual(firstDoneAt)
      // What `await send()` gives is the send's result, as for any send.
      expect((await second).id).toBe(second.trace().id)
    } finally {
      await rt.shutdown()
    }
  })

  it('a fan-out wider than the bound leaves alone once nothing waits', async () => {
    const ids = idsOf('wide', 4)
    const host = await startHost(ids)
    const rt = await initializeHappen(natsConfig({ maxInFlight: 2 }))
    try {
      const nodes = createNodeArray(ids.map((id) => rt.node(id)))
      await host.lag()
      const results = await Promise.all(
        [1, 2, 3].map((n) => nodes.send({ type: 'gauge', payload: { n, ms: 20 } }).return()),
      )
      expect(results.map((r) => Object.values(r).map((v) => v.n))).toEqual([
        [1, 1, 1, 1],
        [2, 2, 2, 2],
        [3, 3, 3, 3],
      ])
      // One fan-out at a time, all of its 4 branches at once.
      expect((await host.lag()).mostRunning).toBe(4)
    } finally {
      await rt.shutdown()
    }
  })

  it("flows calling back across processes never wait on the bound: a flow serving another runtime's event is not held back", async () => {
    const ids = idsOf('ask')
    await startHost(ids)
    const rt = await initializeHappen(natsConfig({ maxInFlight: 2 }))
    try {
      // Its flows serve the hosts' flows, which wait for them while holding this runtime's bound.
      const caller = rt.createNode(idsOf('caller', 1)[0])
      caller.on('asked', (event, context) => context.node.send(event.payload.leaf, { type: 'leaf' }).return())
      await rt.ready()
      const nodes = createNodeArray(ids.map((id) => rt.node(id)))
      const results = await nodes
        .send({ type: 'ask', payload: { to: caller.id, leaf: ids[0] } })
        .return({ timeout: 5000 })
      expect(results).toEqual({ [ids[0]]: { by: ids[0], answer: ids[0] }, [ids[1]]: { by: ids[1], answer: ids[0] } })
    } finally {
      await rt.shutdown()
    }
  })

  it('maxInFlightBytes holds back sends past that many bytes of events waiting', async () => {
    const ids = idsOf('bytes', 1)
    const host = await startHost(ids)
    // Each event is about 10 KB: two fit.
    const rt = await initializeHappen(natsConfig({ maxInFlightBytes: 25_000 }))
    try {
      const node = rt.node(ids[0])
      await host.lag()
      const pad = 'x'.repeat(10_000)
      const results = []
      for (let n = 0; n < 40; n++) {
        const sending = node.send({ type: 'gauge', payload: { n, ms: 10, pad } })
        results.push(sending.return())
        await sending
      }
      expect((await Promise.all(results)).map((r) => r.n)).toEqual(Array.from({ length: 40 }, (_, n) => n))
      expect((await host.lag()).mostRunning).toBe(2)
    } finally {
      await rt.shutdown()
    }
  })

  it('shutdown() fails the sends held back with SHUTDOWN: `await send()` rejects, each target too', async () => {
    const ids = idsOf('down')
    await startHost(ids)
    const rt = await initializeHappen(natsConfig({ maxInFlight: 2 }))
    const nodes = createNodeArray(ids.map((id) => rt.node(id)))
    const first = nodes.send({ type: 'gauge', payload: { n: 1, ms: 2000 } })
    await first
    const held = nodes.send({ type: 'gauge', payload: { n: 2, ms: 0 } })
    const settled = held.return({ settled: true })
    const started = performance.now()
    await rt.shutdown()
    await expect(held).rejects.toMatchObject({ code: 'SHUTDOWN', message: expect.stringContaining('held back') })
    const entries = await settled
    for (const id of ids) {
      expect(entries[id].status).toBe('rejected')
      expect(entries[id].reason.code).toBe('SHUTDOWN')
      expect(entries[id].reason.message).toContain(`node '${id}' was held back`)
    }
    // The one that left fails SHUTDOWN too, as before; nothing waited for the 2 s flow.
    expect((await rejection(first.return())).errors[ids[0]].code).toBe('SHUTDOWN')
    expect(performance.now() - started).toBeLessThan(1500)
  })

  it('a connection that fails fails the sends held back with CONNECTION_FAILED', async () => {
    // Nothing listens on the port: the first connection fails after connectTimeout.
    const url = `nats://127.0.0.1:${await freePort()}`
    const rt = initializeHappen({ transport: { type: 'nats', servers: [url], connectTimeout: 300, maxInFlight: 1 } })
    const sender = rt.createNode('sender')
    const first = sender.send('elsewhere-1', { type: 'gauge' })
    const held = sender.send('elsewhere-2', { type: 'gauge' })
    const heldEntries = held.return({ settled: true })
    expect((await rejection(rt.ready())).code).toBe('CONNECTION_FAILED')
    await expect(held).rejects.toMatchObject({ code: 'CONNECTION_FAILED' })
    expect((await heldEntries)['elsewhere-2'].reason.code).toBe('CONNECTION_FAILED')
    expect((await rejection(first.return())).errors['elsewhere-1'].code).toBe('CONNECTION_FAILED')
    await rt.shutdown()
  })

  it('maxInFlight and maxInFlightBytes are validated, naming the key', () => {
    const base = { type: 'nats', servers: [NATS_URL] }
    for (const key of ['maxInFlight', 'maxInFlightBytes']) {
      for (const bad of [0, -1, 1.5, Number.POSITIVE_INFINITY])
        expect(() => initializeHappen({ transport: { ...base, [key]: bad } })).toThrow(
          new RegExp(`"config\\.transport\\.${key}" is out of range. It must be a positive integer`),
        )
      expect(() => initializeHappen({ transport: { ...base, [key]: '10' } })).toThrow(
        new RegExp(`config\\.transport\\.${key}.*of type number`),
      )
    }
  })
})

describe.skipIf(!NATS_URL)('NATS backpressure: a host serving a backlog keeps answering', () => {
  afterAll(() => stopAll())

  it('10,000 CPU-bound requests at once (a second of work): its event loop lag stays under 100 ms (p99) and it answers I/O meanwhile', async () => {
    const ids = idsOf('backlog')
    const host = await startHost(ids)
    // A bound that lets all 10,000 branches go at once: the host gets them as one backlog.
    const rt = await initializeHappen(natsConfig({ maxInFlight: 10_000 }))
    try {
      const nodes = createNodeArray(ids.map((id) => rt.node(id)))
      await nodes.send({ type: 'work', payload: { n: -1, us: 0 } }).return()
      await host.lag()
      const counts = { ok: 0, wrong: [] }
      const started = performance.now()
      const results = Array.from({ length: 5000 }, (_, n) =>
        nodes
          .send({ type: 'work', payload: { n, us: 100 } })
          .return({ settled: true })
          .then((e) => tally(e, n, counts)),
      )
      let done = false
      const all = Promise.all(results).then(() => (done = true))
      // Lines on the host's stdin while it serves: each is answered in its turn.
      const answers = []
      for (let n = 0; !done; n++) {
        answers.push(await host.ping(n))
        await sleep(20)
      }
      await all
      const serving = performance.now() - started
      const lag = await host.lag()
      expect(counts).toEqual({ ok: 10_000, wrong: [] })
      expect(lag.served).toBe(10_000)
      // A second of work at least: held in one go it would have stopped everything else that long.
      expect(serving).toBeGreaterThan(1000)
      expect(lag.p99).toBeLessThan(100)
      expect(Math.max(...answers)).toBeLessThan(250)
      expect(answers.length).toBeGreaterThan(10)
    } finally {
      await rt.shutdown()
    }
  })
})
