// Issue 21: what a client with access to the happen subjects can and cannot do (README
// "Security"). A stranger is a plain nats.js client on the same server; it can publish anything
// anywhere and read happen.presence, as any client of an unconfined server can. The server is
// this file's own, so that what the stranger reads is only this test's traffic.
import { connect, headers as natsHeaders } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'
import { NATS_URL, freePort, hasNatsServer, sleep, spawnHost, startServer, stopAll, until } from './nats/harness.mjs'
const encode = (value) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value))
/** NATS headers with one header. */
const headers = (name, value) => {
  const h = natsHeaders()
  h.set(name, value)
  return h
}

describe.skipIf(!NATS_URL || !hasNatsServer)('NATS transport: what a stranger on the server cannot do', () => {
  let happen
  let stranger
  let url
  const presence = []

  beforeAll(async () => {
    url = `nats://127.0.0.1:${await freePort()}`
    await startServer(Number(url.split(':')[2]))
    stranger = await connect({ servers: url })
    const sub = stranger.subscribe('happen.presence')
    ;(async () => {
      for await (const m of sub) presence.push(new TextDecoder().decode(m.data))
    })()
    await spawnHost(url, ['trust-a', 'trust-b'])
    happen = await initializeHappen({ transport: { type: 'nats', servers: [url], heartbeat: 200 } })
    await happen.ready()
  })

  afterAll(async () => {
    await happen?.shutdown()
    await stranger?.close()
    await stopAll()
  })

  /** What presence told the stranger about every runtime: their names (`rt`, or read off an inbox it gave). */
  const announcedRuntimes = () => {
    const names = new Set()
    for (const text of presence) {
      const { rt, hello, from } = JSON.parse(text)
      if (typeof rt === 'string') names.add(rt)
      for (const inbox of [hello, from]) if (typeof inbox === 'string') names.add(inbox.split('.')[1])
    }
    return [...names]
  }

  it('presence never carries a runtime inbox, only its name', async () => {
    await until(() => announcedRuntimes().length >= 2)
    for (const text of presence) expect(text).not.toContain('_HAPPEN')
  })

  it('replies published to guessed inbox subjects are not believed: every result is the node’s own', async () => {
    // Sends in two turns: the first goes on the node subjects, the later ones in frames.
    const first = await happen
      .node('trust-a')
      .send({ type: 'slow', payload: { ms: 1 } })
      .return()
    expect(first).toBe('trust-a slept 1 ms')
    const sends = Array.from({ length: 20 }, (_, i) =>
      happen.node(i % 2 ? 'trust-a' : 'trust-b').send({ type: 'slow', payload: { ms: 300 } }),
    )
    // Every reply shape the wire has, to every subject a stranger can build from what it saw.
    const forged = { h: 'forged', r: [] }
    for (let branch = 0; branch < 200; branch++) forged.r.push([branch, 1, [], 'forged'])
    for (const rt of announcedRuntimes()) {
      for (const key of ['f', 'x1', 'x2', 'x3', ...Array.from({ length: 60 }, (_, i) => String(i))])
        stranger.publish(`_HAPPEN.${rt}.${key}`, encode(forged))
    }
    await stranger.flush()
    const results = await Promise.all(sends.map((s) => s.return()))
    expect(results).toEqual(sends.map((_, i) => `${i % 2 ? 'trust-a' : 'trust-b'} slept 300 ms`))
  })

  it('a stranger that reads a frame cannot answer it in another runtime’s name, nor on another subject', async () => {
    // An unconfined client can read the frames sent to a runtime (README: confine it).
    const hostRt = announcedRuntimes().find((rt) => presence.some((t) => t.includes('trust-a') && t.includes(rt)))
    const frames = stranger.subscribe(`happen.rt.${hostRt}`)
    const seen = []
    ;(async () => {
      for await (const m of frames)
        if (m.headers) seen.push({ reply: m.reply, body: JSON.parse(new TextDecoder().decode(m.data)) })
    })()
    await stranger.flush()
    const sends = Array.from({ length: 10 }, () => happen.node('trust-a').send({ type: 'slow', payload: { ms: 300 } }))
    await until(() => seen.length > 0)
    const { reply, body } = seen[0]
    const branch = body[2]
    const inbox = reply.slice(0, reply.lastIndexOf('.') + 1)
    // In another runtime's name on the frame's own subject, and on the branch's own subject.
    stranger.publish(reply, encode({ h: 'someone-else', r: [[branch, 1, [], 'forged']] }))
    stranger.publish(`${inbox}${branch}`, encode({ h: hostRt, r: [[branch, 1, [], 'forged']] }))
    await stranger.flush()
    frames.unsubscribe()
    const results = await Promise.all(sends.map((s) => s.return()))
    expect(results.every((r) => r === 'trust-a slept 300 ms')).toBe(true)
  })

  it('messages of any shape are dropped, counted and logged where they arrive; the host serves on', async () => {
    const host = await spawnHost(url, ['trust-c'], 200, { NODE_DEBUG: 'happen' })
    await until(() => presence.some((text) => text.includes('trust-c')))
    const route = announcedRuntimes().find((rt) => presence.some((t) => t.includes('trust-c') && t.includes(rt)))
    const reply = '_HAPPEN.str4nger.s3cret.x1'
    const causal = () => headers('happen-causal', '1')
    // The 25 bytes that hung a host, a fan frame counting -3, and worse.
    stranger.publish(`happen.rt.${route}`, encode('[-4.5,"x","y","z","w"]'), { reply, headers: causal() })
    stranger.publish('happen.fan', encode('[-3]'), { reply, headers: headers('happen-causal', `{"t":["${route}"]}`) })
    stranger.publish(`happen.rt.${route}`, encode('[1e9,"trust-c"]'), { reply, headers: causal() })
    stranger.publish('happen.node.trust-c', encode('{"type":1}'), {
      reply: `${reply.slice(0, -2)}7`,
      headers: headers('happen-causal', '[1,2]'),
    })
    stranger.publish('happen.presence', encode('{"up":"everything","rt":"x"}'))
    stranger.publish(`happen.rt.${route}`, new Uint8Array([0xff, 0xfe, 0x00]), { reply, headers: causal() })
    await stranger.flush()
    const started = performance.now()
    const result = await happen
      .node('trust-c')
      .send({ type: 'slow', payload: { ms: 1 } })
      .return()
    expect(result).toBe('trust-c slept 1 ms')
    expect(performance.now() - started).toBeLessThan(1000)
    await until(() => (host.stderr.text().match(/dropped a/g) ?? []).length >= 5)
    const log = host.stderr.text()
    expect(log).toContain('k is -4.5')
    expect(log).toContain('str4nger')
    // One process warning for the lot (at most one a minute), naming subject and sender.
    expect(log.match(/HAPPEN_DROPPED_MESSAGE|dropped a malformed NATS/g)?.length).toBeGreaterThanOrEqual(1)
    expect(log).not.toContain('s3cret')
  })

  it('a forged presence claim reroutes nothing: the live host keeps its node', async () => {
    await happen
      .node('trust-b')
      .send({ type: 'slow', payload: { ms: 1 } })
      .return()
    stranger.publish('happen.presence', encode({ up: ['trust-b'], at: [0], first: false, rt: 'f0rged000000' }))
    stranger.publish('happen.presence', encode({ down: ['trust-b'], rt: 'f0rged000000' }))
    await stranger.flush()
    await sleep(300)
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        happen
          .node('trust-b')
          .send({ type: 'slow', payload: { ms: 1 } })
          .return(),
      ),
    )
    expect(results).toEqual(Array(20).fill('trust-b slept 1 ms'))
  })
})
