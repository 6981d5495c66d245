// Issue 25: errors that read well. An uncaught HANDLER_FAILED prints each failing handler's
// message, node and step with the user's own frames, not happen's.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { inspect } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { HappenError, initializeHappen } from 'happen'

const unhandled = fileURLToPath(new URL('./fixtures/unhandled-handler-failed.mjs', import.meta.url))

const runtimes = []
function runtime() {
  const rt = initializeHappen()
  runtimes.push(rt)
  return rt
}
afterEach(async () => {
  while (runtimes.length) await runtimes.pop().shutdown()
})

const occurrences = (text, part) => text.split(part).length - 1

/** Two nodes whose handlers throw 'card declined at a' / 'card declined at b', sent to together. */
async function twoFailing() {
  const rt = runtime()
  const a = rt.createNode('a')
  const b = rt.createNode('b')
  a.on('charge', function chargeAtA() {
    throw new Error('card declined at a')
  })
  b.on('charge', function chargeAtB() {
    throw new Error('card declined at b')
  })
  return rt.createNodeArray([a, b]).send({ type: 'charge' }).return()
}

describe('an uncaught HANDLER_FAILED reads well', () => {
  it('prints each message once per failure, the nodes and steps, and the handler frame first, in few lines', () => {
    const run = spawnSync(process.execPath, [unhandled], { encoding: 'utf8', timeout: 20_000 })
    expect(run.status).toBe(1)
    const printed = run.stderr
    const lines = printed.trimEnd().split('\n')
    expect(lines.length).toBeLessThan(30)
    // b's message once (the summary); a's twice: the summary and the [cause] Node prints.
    expect(occurrences(printed, 'card declined at b')).toBe(1)
    expect(occurrences(printed, 'card declined at a')).toBe(2)
    expect(printed).toContain("node 'a' failed on 'charge' at step 'chargeAtA'")
    expect(printed).toContain("node 'b' failed on 'charge' at step 'chargeAtB'")
    expect(printed).toContain("code: 'HANDLER_FAILED'")
    // The first frame under the summary is the user's handler, in the fixture.
    const summary = lines.findIndex((line) => line.startsWith('HappenError: 2 of 2 nodes failed'))
    expect(summary).toBeGreaterThanOrEqual(0)
    expect(lines[summary + 1]).toMatch(/^ {4}at chargeAtA \(.*unhandled-handler-failed\.mjs:\d+:\d+\)$/)
    // happen's frames appear only inside the cause (the user's own Error, untouched).
    const cause = lines.findIndex((line) => line.includes('[cause]: Error: card declined at a'))
    expect(cause).toBeGreaterThan(summary)
    expect(lines.slice(0, cause).join('\n')).not.toMatch(/lib[\\/](delivery|runtime)\.js/)
  })

  it('keeps .errors, .failures, .results and cause readable, out of what inspect prints', async () => {
    const error = await twoFailing().catch((e) => e)
    expect(error).toBeInstanceOf(HappenError)
    expect(error.code).toBe('HANDLER_FAILED')
    expect(error.errors.a.message).toBe('card declined at a')
    expect(error.errors.b.message).toBe('card declined at b')
    expect(error.failures.map(({ node, type, step }) => ({ node, type, step }))).toEqual([
      { node: 'a', type: 'charge', step: 'chargeAtA' },
      { node: 'b', type: 'charge', step: 'chargeAtB' },
    ])
    expect(error.results).toEqual({})
    expect(error.cause).toBe(error.errors.a)
    for (const detail of ['results', 'errors', 'failures']) expect(Object.keys(error)).not.toContain(detail)
    const printed = inspect(error)
    expect(occurrences(printed, 'card declined at b')).toBe(1)
    expect(error.stack.split('\n')[0]).toBe(`HappenError: ${error.message}`)
    expect(error.stack.split('\n')[1]).toMatch(/^ {4}at chargeAtA /)
    expect(error.stack).not.toMatch(/lib[\\/](delivery|runtime)\.js/)
  })

  it('a thrown non-Error still gives a summary stack, with no frames to show', async () => {
    const rt = runtime()
    const n = rt.createNode('n')
    n.on('go', function refuse() {
      throw 'nope'
    })
    const error = await n
      .send({ type: 'go' })
      .return()
      .catch((e) => e)
    expect(error.stack).toBe("HappenError: The flow in node 'n' failed on 'go' at step 'refuse': nope")
    expect(error.cause).toBe('nope')
  })
})
