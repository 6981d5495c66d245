// Every entry settles (issue 21): a process that is SIGKILLed while flows of another run there
// fails their entries NODE_LOST within 3 heartbeats of the kill.
import { performance } from 'node:perf_hooks'
import { afterAll, describe, expect, it } from 'vitest'
import { createNodeArray, initializeHappen } from 'happen'
import { NATS_URL, skipMessage, spawnHost, stop, stopAll } from './nats/harness.mjs'

if (!NATS_URL) console.warn(`skipping the NATS liveness load test: ${skipMessage}`)

describe.skipIf(!NATS_URL)('NATS liveness under load', () => {
  afterAll(() => stopAll())

  // The connection reports its first connection as it reports a reconnection: taken for one, it
  // gave every runtime 3 s of grace after it started, in which a gone process was asked again
  // rather than failed (after a reconnection it may not be back on the server yet).
  it('a host SIGKILLed just after the requester connected: its entry fails NODE_LOST within 3 heartbeats, not after a reconnection grace', async () => {
    const heartbeat = 500
    const id = `early-${process.pid}`
    const host = await spawnHost(NATS_URL, [id], heartbeat)
    const happen = await initializeHappen({ transport: { type: 'nats', servers: [NATS_URL], heartbeat } })
    try {
      const node = createNodeArray([happen.node(id)])
      // One turn: both go the same way, so the echo's answer says the hang arrived.
      const hung = node.send({ type: 'hang', payload: { hang: [id] } }).return({ settled: true })
      await node.send({ type: 'echo' }).return()
      const killedAt = performance.now()
      await stop(host, 'SIGKILL')
      const entry = (await hung)[id]
      const took = Math.round(performance.now() - killedAt)
      expect(entry.status).toBe('rejected')
      expect(entry.reason.code).toBe('NODE_LOST')
      expect(took).toBeLessThan(3 * heartbeat)
    } finally {
      await happen.shutdown()
    }
  })
})
