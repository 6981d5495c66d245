// A runtime's fields are read on every send: they must stay in V8's fast mode. Deleting a
// property (the thenable that `await initializeHappen({ transport })` goes through) or defining
// many one by one (an addon's exports) turns an object into a dictionary, and every read of it
// into a hash lookup. Only V8's natives syntax can tell, so a child process checks.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'

const child = fileURLToPath(new URL('./fixtures/fast-properties-child.cjs', import.meta.url))

function probe() {
  const run = spawnSync(process.execPath, ['--allow-natives-syntax', child], { encoding: 'utf8', timeout: 20000 })
  if (run.status !== 0) throw new Error(`probe failed (${run.status}): ${run.stderr}`)
  return JSON.parse(run.stdout)
}

describe('fast properties (the send path reads these objects on every send)', () => {
  // One child answers both: it takes a connection (or its refusal) to settle the runtime.
  let report
  beforeAll(() => {
    report = probe()
  })

  it('a runtime with a NATS transport keeps fast properties once its await settled (dictionary-mode regression)', () => {
    // Connected when the suite has a nats-server (HAPPEN_NATS_URL), refused otherwise: both settle the thenable.
    expect(report.connected).toBe(Boolean(process.env.HAPPEN_NATS_URL))
    if (report.connected) expect(report.answer).toEqual({ 'fast-properties-probe': 'pong' })
    expect(report.thenGone).toBe(true)
    expect(report.runtime).toBe(true)
  })

  it("the addon's functions are read from an object in fast mode", () => {
    expect(report.native).toBe(true)
  })
})
