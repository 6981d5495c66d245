// Issue 21: least privilege. examples/nats-permissions/server.conf, as shipped, on a real
// nats-server: every process confined to its own subjects, everything happen does still works;
// and each permission taken away surfaces as PERMISSION_DENIED naming the subject, not a hang.
import fs from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'
import { freePort, hasNatsServer, NATS_URL, spawnHost, startServer, stop, stopAll } from './nats/harness.mjs'

const template = fs.readFileSync(new URL('../examples/nats-permissions/server.conf', import.meta.url), 'utf8')
const passwords = { ORDERS_PASSWORD: 'orders-secret', PAYMENTS_PASSWORD: 'payments-secret', CALLER_PASSWORD: 'c4ller' }
Object.assign(process.env, passwords)

const HEARTBEAT = 300

/** A nats-server with `config` on a free port; its URL. */
async function serverWith(config) {
  const port = await freePort()
  const server = await startServer(port, [], config)
  return { url: `nats://127.0.0.1:${port}`, server }
}

/** A transport config for `user` (its scope is its name) on `url`. */
const as = (user, url, extra = {}) => ({
  type: 'nats',
  servers: [url],
  user,
  pass: passwords[`${user.toUpperCase()}_PASSWORD`],
  scope: user,
  heartbeat: HEARTBEAT,
  ...extra,
})

const hostAs = (user, url, ids) => {
  const { type, servers, heartbeat, ...options } = as(user, url)
  return spawnHost(url, ids, HEARTBEAT, {}, options)
}

/**
 * What starting a runtime with `transport`, creating node `id` in it and awaiting ready()
 * reports first (any of the three may refuse), or null; `runtime.happen` is the runtime.
 */
async function firstError(transport, id, runtime = {}) {
  try {
    runtime.happen = initializeHappen({ transport })
    await runtime.happen
    runtime.happen.createNode(id)
    await runtime.happen.ready()
  } catch (error) {
    return error
  }
  return null
}

/** The error a send's one target failed with. */
const failureOf = (error, id) => error.errors?.[id] ?? error

describe.skipIf(!NATS_URL || !hasNatsServer)(
  'NATS transport: least-privilege permissions (the shipped template)',
  () => {
    let url
    let happen
    let caller
    let payments

    beforeAll(async () => {
      ;({ url } = await serverWith(template))
      payments = await hostAs('payments', url, ['payments'])
      await hostAs('orders', url, ['orders', 'orders.audit'])
      happen = await initializeHappen({ transport: as('caller', url) })
      caller = happen.createNode('caller')
      caller.on('echo', (event) => ({ here: 'caller', payload: event.payload }))
      caller.on('relayed', (event) => ({ here: 'caller', payload: event.payload }))
      await happen.ready()
    })

    afterAll(async () => {
      await happen?.shutdown()
      await stopAll()
    })

    it('fan-out across confined processes: every result keyed by node, sent and answered in frames', async () => {
      const targets = ['orders', 'orders.audit', 'payments'].map((id) => happen.node(id))
      const first = await caller.send(targets, { type: 'echo', payload: 0 }).return()
      expect(Object.keys(first).sort()).toEqual(['orders', 'orders.audit', 'payments'])
      const sends = Array.from({ length: 2000 }, (_, i) => caller.send(targets, { type: 'async.echo', payload: i }))
      const results = await Promise.all(sends.map((s) => s.return()))
      expect(results.every((r, i) => r.payments.n === i && r.orders.n === i && r['orders.audit'].n === i)).toBe(true)
    })

    it('a batch, a broadcast, and a send from inside a remote flow back to this process', async () => {
      const batch = await caller
        .send('payments', [
          { type: 'batch.a', payload: 1 },
          { type: 'batch.b', payload: 2 },
        ])
        .return()
      expect(batch.types).toEqual(['batch.a', 'batch.b'])
      const everyone = await caller.broadcast({ type: 'echo', payload: 'all' }).return()
      expect(Object.keys(everyone).sort()).toEqual(['caller', 'orders', 'orders.audit', 'payments'])
      const relayed = await caller.send('orders', { type: 'relay', payload: { to: 'caller' } }).return()
      expect(relayed.answer).toEqual({ here: 'caller', payload: { from: 'orders' } })
    })

    it('a second process of the same user cannot take a node id a live one hosts (DUPLICATE_NODE)', async () => {
      const second = {}
      expect((await firstError(as('orders', url), 'orders', second))?.code).toBe('DUPLICATE_NODE')
      await second.happen.shutdown()
    })

    it('a confined host killed mid-flow: its entries fail NODE_LOST, the others arrive', async () => {
      const send = caller.send([happen.node('orders'), happen.node('payments')], {
        type: 'hang',
        payload: { hang: ['payments'] },
      })
      await new Promise((resolve) => setTimeout(resolve, 100))
      await stop(payments, 'SIGKILL')
      const settled = await send.return({ settled: true })
      expect(settled.orders).toEqual({ status: 'fulfilled', value: 'orders done' })
      expect(settled.payments.status).toBe('rejected')
      expect(settled.payments.reason.code).toBe('NODE_LOST')
    })
  },
)

describe.skipIf(!NATS_URL || !hasNatsServer)('NATS transport: the template across a server restart', () => {
  afterAll(() => stopAll())

  it('requests in flight are answered once each: answers the new server refuses (it never saw their requests) go again on liveness checks', async () => {
    const port = await freePort()
    const url = `nats://127.0.0.1:${port}`
    let server = await startServer(port, [], template)
    const { type, servers, heartbeat, ...options } = as('orders', url)
    await spawnHost(url, ['orders'], 1000, {}, options)
    const happen = await initializeHappen({ transport: as('caller', url, { heartbeat: 1000 }) })
    try {
      const orders = happen.node('orders')
      await orders.send({ type: 'echo' }).return() // frames from now on
      const send = (key, ms) => orders.send({ type: 'counted', payload: { key, ms } }).return({ settled: true })
      const keys = Array.from({ length: 30 }, (_, i) => `k${i}`)
      // Flows that end before, during and after the outage.
      const outcomes = keys.map((key, i) => send(key, i * 30))
      await new Promise((resolve) => setTimeout(resolve, 50))
      await stop(server, 'SIGKILL')
      await new Promise((resolve) => setTimeout(resolve, 400))
      server = await startServer(port, [], template)
      const failed = (await Promise.all(outcomes)).filter((o) => o.orders.status !== 'fulfilled')
      expect(failed.map((o) => o.orders.reason.message)).toEqual([])
      const runs = await orders.send({ type: 'runs' }).return()
      expect(keys.map((key) => runs[key])).toEqual(keys.map(() => 1))
    } finally {
      await happen.shutdown()
    }
  }, 30_000)
})

/** The template with `from` (text of one user's block) replaced by `to`. */
function without(from, to = '') {
  expect(template).toContain(from)
  return template.replace(from, to)
}

describe.skipIf(!NATS_URL || !hasNatsServer)(
  'NATS transport: a permission taken away says PERMISSION_DENIED, naming the subject',
  () => {
    afterAll(() => stopAll())

    const callerSubscribes =
      'subscribe: { allow: ["happen.presence", "_HAPPEN.caller.>", "happen.rt.caller.>", "happen.node.caller"] }'

    it.each([
      ['its inbox', callerSubscribes.replace('"_HAPPEN.caller.>", ', ''), '_HAPPEN.caller.'],
      ['its frame subject', callerSubscribes.replace('"happen.rt.caller.>", ', ''), 'happen.rt.caller.'],
      ['presence', callerSubscribes.replace('"happen.presence", ', ''), 'happen.presence'],
      ['its node’s subject', callerSubscribes.replace(', "happen.node.caller"', ''), 'happen.node.caller'],
    ])('no subscription to %s: ready() rejects', async (_, to, subject) => {
      const { url } = await serverWith(without(callerSubscribes, to))
      const started = performance.now()
      const runtime = {}
      const error = await firstError(as('caller', url), 'caller', runtime)
      expect(error?.code).toBe('PERMISSION_DENIED')
      expect(error.message).toContain(`subscribe to '${subject}`)
      // An inbox's secret (22 characters of base64url) is never shown.
      expect(error.message).not.toMatch(/\.[A-Za-z0-9_-]{22}\./)
      expect(performance.now() - started).toBeLessThan(HEARTBEAT * 2 + 500)
      await runtime.happen.shutdown()
    })

    it('no publishing on presence: ready() rejects', async () => {
      const from = 'HAPPEN_SENDS: ["happen.node.>", "happen.rt.>", "happen.presence"]'
      const { url } = await serverWith(without(from, 'HAPPEN_SENDS: ["happen.node.>", "happen.rt.>"]'))
      const runtime = {}
      const error = await firstError(as('caller', url), 'caller', runtime)
      expect(error?.code).toBe('PERMISSION_DENIED')
      expect(error.message).toContain("publish to 'happen.presence'")
      await runtime.happen.shutdown()
    })

    it('no publishing to nodes: its own node is refused, and a send to another fails at once', async () => {
      const from = 'HAPPEN_SENDS: ["happen.node.>", "happen.rt.>", "happen.presence"]'
      const { url } = await serverWith(without(from, 'HAPPEN_SENDS: ["happen.rt.>", "happen.presence"]'))
      const runtime = {}
      const error = await firstError(as('caller', url), 'caller', runtime)
      const { happen } = runtime
      expect(error?.code).toBe('PERMISSION_DENIED')
      expect(error.message).toContain("publish to 'happen.node.caller'")
      expect(happen.node('caller')._transport).toBeTruthy() // disposed here: the id names a remote node now
      const send = await happen
        .node('orders')
        .send({ type: 'echo' })
        .return()
        .catch((e) => failureOf(e, 'orders'))
      expect(send.code).toBe('PERMISSION_DENIED')
      expect(send.message).toContain("publish to 'happen.node.orders'")
      await happen.shutdown()
    })

    it('a host that may not answer (no allow_responses): the sender’s entry fails NODE_LOST, not a wait', async () => {
      const answers = 'allow_responses: $HAPPEN_ANSWERS'
      const ordersBlock = template.slice(template.indexOf('user: orders'), template.indexOf('user: payments'))
      const config = template.replace(ordersBlock, ordersBlock.replace(answers, ''))
      expect(config).not.toBe(template)
      const { url } = await serverWith(config)
      await hostAs('orders', url, ['orders'])
      const happen = await initializeHappen({ transport: as('caller', url) })
      await happen.ready()
      const started = performance.now()
      const refused = await happen
        .node('orders')
        .send({ type: 'echo', payload: 1 })
        .return()
        .catch((e) => failureOf(e, 'orders'))
      expect(refused.code).toBe('NODE_LOST')
      expect(refused.message).toContain('allow_responses')
      expect(performance.now() - started).toBeLessThan(HEARTBEAT * 20)
      await happen.shutdown()
    })

    it('no publishing frames: sends to a host already seen fail PERMISSION_DENIED naming its frame subject', async () => {
      const from = 'HAPPEN_SENDS: ["happen.node.>", "happen.rt.>", "happen.presence"]'
      const config = without(from, 'HAPPEN_SENDS: ["happen.node.>", "happen.presence"]')
      const { url } = await serverWith(config)
      await hostAs('orders', url, ['orders'])
      const happen = await initializeHappen({ transport: as('caller', url) })
      await happen.ready()
      // Once this runtime knows which runtime hosts `orders` (presence says, or the first
      // reply), sends to it go in frames to that runtime.
      await happen
        .node('orders')
        .send({ type: 'echo', payload: 0 })
        .return({ timeout: HEARTBEAT * 3 })
        .catch(() => {})
      const refused = await happen
        .node('orders')
        .send({ type: 'echo', payload: 1 })
        .return({ timeout: HEARTBEAT * 3 })
        .catch((e) => failureOf(e, 'orders'))
      expect(refused.code).toBe('PERMISSION_DENIED')
      expect(refused.message).toContain("publish to 'happen.rt.orders.")
      await happen.shutdown()
    })
  },
)
