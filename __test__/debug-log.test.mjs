// NODE_DEBUG=happen explains what happened: each send, a target without a matching handler,
// failed flows (and, with NATS, the transport's events).
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

function run(script, env) {
  return spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } })
}

const script = `
  const { initializeHappen } = require('./index.js')
  const happen = initializeHappen()
  const orders = happen.createNode('orders')
  const audit = happen.createNode('audit')
  orders.on('order.created', () => 'ok')
  audit.on('order.created', () => { throw new Error('audit is down') })
  ;(async () => {
    const typo = await orders.process({ type: 'ordr.created' })
    const settled = await happen.createNodeArray([orders, audit]).send({ type: 'order.created' }).return({ settled: true })
    console.log(JSON.stringify({ typo, orders: settled.orders.status, audit: settled.audit.status }))
  })()
`

describe('NODE_DEBUG=happen', () => {
  it('logs each send, each target without a matching handler and each failed flow on stderr', () => {
    const child = run(script, { NODE_DEBUG: 'happen' })
    expect(child.status).toBe(0)
    expect(JSON.parse(child.stdout)).toEqual({ typo: null, orders: 'fulfilled', audit: 'rejected' })
    const lines = child.stderr.split('\n')
    expect(lines.some((l) => /^HAPPEN \d+: send 'ordr\.created' \S+ from 'orders' to 'orders'$/.test(l))).toBe(true)
    expect(child.stderr).toContain("no handler of 'ordr.created' at node 'orders'")
    expect(child.stderr).toMatch(/send 'order\.created' \S+ from outside any node to 'orders', 'audit'/)
    expect(child.stderr).toContain(
      "flow of node 'audit' failed on 'order.created' at step 'on 'order.created'': audit is down",
    )
  })

  it('logs nothing without NODE_DEBUG', () => {
    const child = run(script, { NODE_DEBUG: '' })
    expect(child.status).toBe(0)
    expect(child.stderr).toBe('')
  })
})

const natsUrl = process.env.HAPPEN_NATS_URL

describe.skipIf(!natsUrl)('NODE_DEBUG=happen with the NATS transport', () => {
  it('logs the connection and the nodes other processes announce', () => {
    const nats = `
      const { initializeHappen } = require('./index.js')
      ;(async () => {
        const servers = [${JSON.stringify(natsUrl ?? '')}]
        const a = await initializeHappen({ transport: { type: 'nats', servers } })
        const b = await initializeHappen({ transport: { type: 'nats', servers } })
        b.createNode('far-' + process.pid)
        await b.ready()
        await new Promise((r) => setTimeout(r, 200))
        await a.shutdown()
        await b.shutdown()
      })()
    `
    const child = run(nats, { NODE_DEBUG: 'happen' })
    expect(child.status).toBe(0)
    expect(child.stderr).toMatch(/HAPPEN \d+: nats: connected/)
    expect(child.stderr).toMatch(/nats: nodes up \["far-\d+"\]/)
  })
})
