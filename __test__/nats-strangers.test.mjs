// Issue 21: state grows by what strangers say no further than the transport's limits. A stranger
// (a plain nats.js client) announces 200,000 invented node ids, then sends 200,000 events from
// as many invented senders; the host's heap after GC grows by less than 10 MB, and its own
// nodes keep answering.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { connect, headers } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'
import { NATS_URL, freePort, hasNatsServer, startServer, stopAll, until } from './nats/harness.mjs'

const probeScript = fileURLToPath(new URL('./nats/probe-host.mjs', import.meta.url))
const encode = (value) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value))
const MB = 1024 * 1024

/** The probe host: `heap()` resolves to what it reports (see nats/probe-host.mjs). */
function startProbe(url, ids) {
  const child = spawn(process.execPath, [probeScript, url, ids.join(',')], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = []
  const waiting = []
  let text = ''
  child.stdout.on('data', (d) => {
    text += d
    for (let cut = text.indexOf('\n'); cut >= 0; cut = text.indexOf('\n')) {
      lines.push(text.slice(0, cut))
      text = text.slice(cut + 1)
      while (waiting.length > 0 && lines.length > 0) waiting.shift()(lines.shift())
    }
  })
  const next = () => new Promise((resolve) => (lines.length > 0 ? resolve(lines.shift()) : waiting.push(resolve)))
  const heap = async () => {
    child.stdin.write('heap\n')
    const [, used, remotes, reach, senders] = (await next()).split(' ').map(Number)
    return { used, remotes, reach, senders }
  }
  return next().then(() => ({ child, heap }))
}

describe.skipIf(!NATS_URL || !hasNatsServer)('NATS transport: bounded state per stranger', () => {
  let url
  let probe
  let stranger
  let happen
  const routes = new Map()

  beforeAll(async () => {
    url = `nats://127.0.0.1:${await freePort()}`
    await startServer(Number(url.split(':')[2]))
    stranger = await connect({ servers: url })
    const sub = stranger.subscribe('happen.presence')
    ;(async () => {
      for await (const m of sub) {
        const { up, rt } = JSON.parse(new TextDecoder().decode(m.data))
        for (const id of up ?? []) routes.set(id, rt)
      }
    })()
    await stranger.flush()
    probe = await startProbe(url, ['probe-a'])
    happen = await initializeHappen({ transport: { type: 'nats', servers: [url], heartbeat: 200 } })
    await happen.ready()
    await until(() => routes.has('probe-a'))
  }, 20_000)

  afterAll(async () => {
    probe?.child.stdin.end()
    await happen?.shutdown()
    await stranger?.close()
    await stopAll()
  })

  it('200,000 node ids announced by invented runtimes: kept up to limits.remoteNodes (10,000), heap +<10 MB, the probe still answers', async () => {
    const before = await probe.heap()
    for (let r = 0; r < 40; r++) {
      const up = Array.from({ length: 5000 }, (_, i) => `fake-${r}-${i}`)
      stranger.publish('happen.presence', encode({ up, at: up.map(() => 0), first: false, rt: `f4ke${r}` }))
    }
    await stranger.flush()
    let after = await probe.heap()
    for (let i = 0; i < 50 && after.remotes < 10_000; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      after = await probe.heap()
    }
    console.log(
      `200,000 ids announced: ${after.remotes} kept, heap +${((after.used - before.used) / MB).toFixed(1)} MB after GC`,
    )
    expect(after.remotes).toBeLessThanOrEqual(10_000)
    expect(after.reach).toBeLessThanOrEqual(10_000)
    expect(after.used - before.used).toBeLessThan(10 * MB)
    expect(await happen.node('probe-a').send({ type: 'echo', payload: 1 }).return()).toEqual({
      by: 'probe-a',
      payload: 1,
    })
  }, 30_000)

  it('200,000 events from as many invented senders: limits.senders handles kept, heap +<10 MB', async () => {
    const before = await probe.heap()
    const rt = routes.get('probe-a')
    const inbox = '_HAPPEN.str4nger.notasecret.'
    let answered = 0
    const replies = stranger.subscribe(`${inbox}*`)
    ;(async () => {
      for await (const m of replies) answered += JSON.parse(new TextDecoder().decode(m.data)).r.length
    })()
    await stranger.flush()
    for (let f = 0; f < 40; f++) {
      const values = []
      for (let i = 0; i < 5000; i++) {
        const n = f * 5000 + i
        values.push(
          1,
          '"probe-a"',
          n + 1,
          `${n + 1},"stranger-${n}",null,0,["stranger-${n}"],${Date.now()},0`,
          '{"type":"echo","payload":null}',
        )
      }
      stranger.publish(`happen.rt.${rt}`, encode(`[${values.join(',')}]`), {
        reply: `${inbox}x${f + 1}`,
        headers: header('5000'),
      })
    }
    await stranger.flush()
    await until(() => answered === 200_000, 60_000)
    const after = await probe.heap()
    console.log(
      `200,000 invented senders: ${after.senders} handles kept, heap +${((after.used - before.used) / MB).toFixed(1)} MB after GC`,
    )
    expect(after.senders).toBeLessThanOrEqual(1000)
    expect(after.used - before.used).toBeLessThan(10 * MB)
  }, 90_000)
})

/** NATS headers with happen's causal header (a frame's entry count). */
function header(value) {
  const h = headers()
  h.set('happen-causal', value)
  return h
}
