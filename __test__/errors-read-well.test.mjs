// Issue 25: errors that read well and say what to do. An uncaught HANDLER_FAILED prints each
// failing handler's message, node and step with the user's own frames, not happen's; an id a
// starting worker() will create says to await it; a send's event is checked before its target;
// every error happen raises on its own account ends with a next step.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { inspect } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { HappenError, initializeHappen } from 'happen'

const unhandled = fileURLToPath(new URL('./fixtures/unhandled-handler-failed.mjs', import.meta.url))
const cruncher = new URL('./fixtures/workers/cruncher.mjs', import.meta.url)

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

describe('UNKNOWN_NODE says what to do', () => {
  it('an unknown id says to check it or create the node', () => {
    const rt = runtime()
    expect(() => rt.node('nobody')).toThrow(
      "No node with id 'nobody' in this runtime; check the id, or create the node (createNode) before addressing it",
    )
  })

  it('while a worker() is still loading, says to await it; once loaded, its node is there', async () => {
    const rt = runtime()
    const starting = rt.worker(cruncher, { workerData: { prefix: 'w', nodes: ['1'] } })
    let early
    try {
      rt.node('w-1')
    } catch (error) {
      early = error
    }
    expect(early).toBeInstanceOf(HappenError)
    expect(early.code).toBe('UNKNOWN_NODE')
    expect(early.message).toBe(
      "No node with id 'w-1' in this runtime; a worker started with worker() is still loading: await worker() before addressing its nodes",
    )
    const sender = rt.createNode('sender')
    expect(() => sender.send('w-1', { type: 'crunch' })).toThrow('a worker started with worker() is still loading')
    await starting
    expect(rt.node('w-1').id).toBe('w-1')
    expect(() => rt.node('w-2')).toThrow("No node with id 'w-2' in this runtime; check the id")
  })

  it('a worker() that fails to load is no longer counted as loading', async () => {
    const rt = runtime()
    await expect(rt.worker(new URL('./fixtures/workers/broken.mjs', import.meta.url))).rejects.toThrow()
    expect(() => rt.node('w-1')).toThrow("No node with id 'w-1' in this runtime; check the id")
  })
})

describe('a send checks its event before its target', () => {
  it("send('x', { id: 1 }) names the missing event.type, not the unknown node", () => {
    const rt = runtime()
    const sender = rt.createNode('sender')
    expect(() => sender.send('x', { id: 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"event.type"') }),
    )
    expect(() => sender.send('x', [{ type: 'ok' }, { id: 1 }])).toThrow('"events[1].type"')
  })

  it('a valid event to an unknown target still names the target', () => {
    const rt = runtime()
    const sender = rt.createNode('sender')
    expect(() => sender.send('x', { type: 'ping' })).toThrow(expect.objectContaining({ code: 'UNKNOWN_NODE' }))
  })

  it('send(event) with one argument goes to the node itself', async () => {
    const rt = runtime()
    const self = rt.createNode('self')
    self.on('ping', (event, context) => `pong from ${context.node.id}`)
    expect(await self.send({ type: 'ping' }).return()).toBe('pong from self')
    expect(() => self.send({ id: 1 })).toThrow('"event.type"')
  })
})

describe('every error says what to do next', () => {
  /** The HappenError `act` throws (or its promise rejects with). */
  async function failure(act) {
    try {
      await act()
    } catch (error) {
      expect(error).toBeInstanceOf(HappenError)
      return error
    }
    throw new Error('expected a HappenError')
  }

  it('DUPLICATE_NODE: pick another id, or dispose() the old node', async () => {
    const rt = runtime()
    rt.createNode('twice')
    const error = await failure(() => rt.createNode('twice'))
    expect(error.code).toBe('DUPLICATE_NODE')
    expect(error.message).toBe(
      "a node with id 'twice' already exists in this runtime; pick another id, or dispose() the old node first",
    )
  })

  it('SHUTDOWN: create a new runtime', async () => {
    const rt = runtime()
    const n = rt.createNode('n')
    await rt.shutdown()
    for (const act of [
      () => rt.createNode('m'),
      () => rt.node('n'),
      () => n.send({ type: 'x' }),
      () => rt.worker(cruncher),
    ]) {
      const error = await failure(act)
      expect(error.code).toBe('SHUTDOWN')
      expect(error.message).toMatch(/has been shut down; create a new runtime with initializeHappen\(\)$/)
    }
  })

  it('DISPOSED: create a new node, stop using the old object', async () => {
    const rt = runtime()
    const gone = rt.createNode('gone')
    const other = rt.createNode('other')
    gone.dispose()
    const acts = [() => gone.on('x', () => {}), () => other.send(gone, { type: 'x' }), () => gone.send({ type: 'x' })]
    acts.push(() => rt.createNodeArray([other, gone]))
    for (const act of acts) {
      const error = await failure(act)
      expect(error.code).toBe('DISPOSED')
      expect(error.message).toMatch(/node 'gone'.*has been disposed; create a new node \(createNode\) and stop using/)
    }
  })

  it('FLOW_TOO_LONG: end the flow with a value', async () => {
    const rt = runtime()
    const loops = rt.createNode('loops')
    const again = () => again
    loops.on('spin', () => again)
    const error = await failure(() => loops.send({ type: 'spin' }).return())
    expect(error.cause.code).toBe('FLOW_TOO_LONG')
    expect(error.cause.message).toMatch(/ran more than \d+ steps for event 'spin'; a step keeps returning a function/)
  })
})
