// SPEC §9 — worker-thread nodes (issue 9): nodes created in a worker thread that happen
// started share the parent's core; every thread reaches every node by id.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { threadId as mainThreadId } from 'node:worker_threads'
import { afterEach, describe, expect, it } from 'vitest'
import { HappenError, initializeHappen } from 'happen'

const here = path.dirname(fileURLToPath(import.meta.url))
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

/** A runtime with one main-thread node and `nodes` in one worker (`a-x`, `a-y` by default). */
async function withWorker(nodes = ['x', 'y'], prefix = 'a') {
  const rt = runtime()
  const main = rt.createNode('main')
  main.on('crunch', (event, context) => ({ by: context.node.id, threadId: mainThreadId, got: event.payload }))
  const worker = await rt.worker(cruncher, { workerData: { prefix, nodes } })
  return { rt, main, worker }
}

describe('worker-thread nodes', () => {
  it('worker() resolves once the module ran, with its thread id and node ids', async () => {
    const { rt, worker } = await withWorker()
    expect(worker.threadId).toBeGreaterThan(0)
    expect(worker.threadId).not.toBe(mainThreadId)
    expect(worker.nodes).toEqual(['a-x', 'a-y', 'a-disposer'])
    expect(typeof worker.terminate).toBe('function')
    expect(rt.node('a-x').id).toBe('a-x')
  })

  it('a send by id reaches a worker node, whose handler runs in that thread', async () => {
    const { rt, worker } = await withWorker()
    const result = await rt
      .node('a-x')
      .send({ type: 'crunch', payload: { n: 1 } })
      .return()
    expect(result).toMatchObject({ by: 'a-x', threadId: worker.threadId, got: { n: 1 } })
    const main = rt.node('main')
    const byId = await main.send('a-y', { type: 'crunch', payload: 2 }).return()
    expect(byId).toMatchObject({ by: 'a-y', threadId: worker.threadId, got: 2 })
    expect(byId.causal.sender).toBe('main')
  })

  it('createNodeArray mixes main-thread and worker nodes; results keyed by id', async () => {
    const { rt, main, worker } = await withWorker()
    const nodes = rt.createNodeArray([main, rt.node('a-x'), rt.node('a-y')])
    const results = await nodes.send({ type: 'crunch', payload: 'all' }).return()
    expect(Object.keys(results)).toEqual(['main', 'a-x', 'a-y'])
    expect(results.main.threadId).toBe(mainThreadId)
    expect(results['a-x'].threadId).toBe(worker.threadId)
    expect(results['a-y']).toMatchObject({ by: 'a-y', got: 'all' })
    // One causal context for every target of the fan-out, wherever it ran.
    expect(results['a-x'].causal.id).toBe(results['a-y'].causal.id)
  })

  it('nodes in two workers run their handlers in parallel threads of their own', async () => {
    const rt = runtime()
    const one = await rt.worker(cruncher, { workerData: { prefix: 'p', nodes: ['1'] } })
    const two = await rt.worker(cruncher, { workerData: { prefix: 'q', nodes: ['1'] } })
    const results = await rt
      .createNodeArray([rt.node('p-1'), rt.node('q-1')])
      .send({ type: 'spin', payload: { ms: 5 } })
      .return()
    expect(results).toEqual({ 'p-1': one.threadId, 'q-1': two.threadId })
  })

  it('broadcast reaches the nodes of every thread', async () => {
    const { main, worker } = await withWorker()
    const results = await main.broadcast({ type: 'crunch', payload: 'everyone' }).return()
    expect(Object.keys(results).sort()).toEqual(['a-disposer', 'a-x', 'a-y', 'main'])
    expect(results['a-disposer']).toBeNull() // no 'crunch' handler there
    expect(results['a-x'].threadId).toBe(worker.threadId)
  })

  it('causality crosses threads and back: a worker flow sends on, caused by the event it handles', async () => {
    const { rt, worker } = await withWorker()
    const sink = rt.createNode('sink')
    sink.on('relayed', (event, context) => ({ saw: event.payload, causal: context.causal }))
    const sent = await rt.node('a-x').send({ type: 'relay', payload: { to: 'sink' } })
    const { relayed, myEvent } = await sent.return()
    expect(myEvent).toBe(sent.id)
    expect(relayed.saw).toEqual({ from: 'a-x' })
    expect(relayed.causal.causationId).toBe(sent.id)
    expect(relayed.causal.correlationId).toBe(sent.id)
    expect(relayed.causal.sender).toBe('a-x')

    // The main thread's trace shows the worker's branch, its step, outcome and duration, and
    // the event its flow sent as a child, with the main-thread node's branch in it.
    const tree = rt.trace(sent.id)
    expect(tree.branches).toHaveLength(1)
    const branch = tree.branches[0]
    expect(branch).toMatchObject({ node: 'a-x', outcome: 'fulfilled', steps: [{ name: 'relay' }] })
    expect(branch.duration).toBeGreaterThan(0)
    expect(branch.children).toHaveLength(1)
    expect(branch.children[0]).toMatchObject({ type: 'relayed', causationId: sent.id, sender: 'a-x' })
    expect(branch.children[0].branches[0]).toMatchObject({ node: 'sink', outcome: 'fulfilled' })
    expect(String(tree)).toContain('a-x [relay] fulfilled')
    expect(worker.threadId).toBeGreaterThan(0)
  })

  it('a worker flow reaches a node of another worker (thread to thread)', async () => {
    const rt = runtime()
    await rt.worker(cruncher, { workerData: { prefix: 'p', nodes: ['1'] } })
    const two = await rt.worker(cruncher, { workerData: { prefix: 'q', nodes: ['1'] } })
    const { relayed } = await rt
      .node('p-1')
      .send({ type: 'relay', payload: { to: 'q-1' } })
      .return()
    // q-1 has no 'relayed' handler: unmatched, null, and its branch sits under p-1's.
    expect(relayed).toBeNull()
    const crunched = await rt.node('p-1').send('q-1', { type: 'crunch', payload: 1 }).return()
    expect(crunched.threadId).toBe(two.threadId)
    expect(crunched.causal.sender).toBe('p-1')
  })

  it('threads dispatching through the shared core at the same time keep their plans apart', async () => {
    const { rt, main } = await withWorker()
    const doubler = rt.createNode('doubler')
    doubler.on('double', (event) => 2 * event.payload)
    const burst = rt
      .node('a-x')
      .send({ type: 'burst', payload: { to: 'doubler', count: 300 } })
      .return()
    const fromMain = []
    for (let i = 0; i < 300; i++) fromMain.push(main.send('a-y', { type: 'crunch', payload: i }).return())
    // A wide fan-out too: its plan is larger than the first io buffer.
    const many = Array.from({ length: 300 }, (_, i) => rt.createNode(`wide-${i}`))
    const wide = rt
      .createNodeArray([...many, rt.node('a-y')])
      .send({ type: 'crunch', payload: 'wide' })
      .return()
    expect(await burst).toEqual({ wrong: 0 })
    expect((await Promise.all(fromMain)).map((r) => r.got)).toEqual(Array.from({ length: 300 }, (_, i) => i))
    expect((await wide)['a-y'].got).toBe('wide')
  })

  it('a batch reaches a worker node as one array, each event with its own causal context', async () => {
    const { rt } = await withWorker()
    const sent = await rt.node('a-y').send([{ type: 'batch' }, { type: 'batch' }, { type: 'batch' }])
    const result = await sent.return()
    expect(result.array).toBe(true)
    expect(result.types).toEqual(['batch', 'batch', 'batch'])
    expect(result.ids).toEqual(sent.ids)
  })

  it('divergent flows across threads: each node takes its own path; the trace names the steps', async () => {
    const { rt, main } = await withWorker()
    main.on('diverge', () => 'main-path')
    const sent = await rt.createNodeArray([main, rt.node('a-x'), rt.node('a-y')]).send({ type: 'diverge' })
    expect(await sent.return()).toEqual({ main: 'main-path', 'a-x': 'x-path', 'a-y': 'other-path' })
    const steps = Object.fromEntries(rt.trace(sent.id).branches.map((b) => [b.node, b.steps.map((s) => s.name)]))
    expect(steps['a-x']).toEqual(["on 'diverge'", 'stepX', 'finishX'])
    expect(steps['a-y']).toEqual(["on 'diverge'", 'stepOther'])
  })

  it('a worker node that throws fails its own entry only; settled gives every entry', async () => {
    const { rt, main } = await withWorker()
    main.on('fail', () => 'main fine')
    const nodes = rt.createNodeArray([main, rt.node('a-x')])
    const error = await nodes
      .send({ type: 'fail' })
      .return()
      .catch((e) => e)
    expect(error).toBeInstanceOf(HappenError)
    expect(error.code).toBe('HANDLER_FAILED')
    expect(error.results).toEqual({ main: 'main fine' })
    expect(error.errors['a-x'].message).toBe('worker says no')
    expect(error.errors['a-x'].code).toBe('E_WORKER')
    const settled = await nodes.send({ type: 'fail' }).return({ settled: true })
    expect(settled.main).toEqual({ status: 'fulfilled', value: 'main fine' })
    expect(settled['a-x'].status).toBe('rejected')
    expect(settled['a-x'].reason.message).toBe('worker says no')
  })

  it('return({ timeout }) names the worker node still running and keeps the others', async () => {
    const { rt, main } = await withWorker()
    main.on('slow', () => 'main quick')
    const sent = rt.createNodeArray([main, rt.node('a-x')]).send({ type: 'slow', payload: { ms: 300 } })
    const error = await sent.return({ timeout: 50 }).catch((e) => e)
    expect(error.code).toBe('TIMEOUT')
    expect(error.pending).toEqual(['a-x'])
    expect(error.results).toEqual({ main: 'main quick' })
    expect(await sent.return()).toEqual({ main: 'main quick', 'a-x': 'slow done' })
  })

  it('NOT_SERIALIZABLE names the field, and nothing is delivered anywhere', async () => {
    const { rt, main } = await withWorker()
    let mainRan = 0
    main.on('crunch-fn', () => mainRan++)
    const nodes = rt.createNodeArray([main, rt.node('a-x')])
    const error = await nodes.send({ type: 'crunch-fn', payload: { ok: 1, callback: () => 1 } }).catch((e) => e)
    expect(error).toBeInstanceOf(HappenError)
    expect(error.code).toBe('NOT_SERIALIZABLE')
    expect(error.message).toContain('payload.callback')
    const symbol = await rt
      .node('a-x')
      .send({ type: 'crunch', payload: { deep: [{ s: Symbol('x') }] } })
      .catch((e) => e)
    expect(symbol.code).toBe('NOT_SERIALIZABLE')
    expect(symbol.message).toContain('payload.deep[0].s')
    const inBatch = await rt
      .node('a-x')
      .send([{ type: 'batch' }, { type: 'batch', payload: new Map([['k', () => 1]]) }])
      .catch((e) => e)
    expect(inBatch.code).toBe('NOT_SERIALIZABLE')
    expect(inBatch.message).toContain('events[1].payload')
    expect(mainRan).toBe(0)
    // Main-thread nodes alone take anything, as before.
    await expect(main.send({ type: 'crunch-fn', payload: { callback: () => 1 } }).return()).resolves.toBe(0)
  })

  it('a result structured clone cannot carry fails that entry with NOT_SERIALIZABLE', async () => {
    const { rt } = await withWorker()
    const error = await rt
      .node('a-x')
      .send({ type: 'give-function' })
      .return()
      .catch((e) => e)
    expect(error.code).toBe('HANDLER_FAILED')
    expect(error.cause.code).toBe('NOT_SERIALIZABLE')
    expect(error.cause.message).toContain('result.callback')
  })

  it('Maps, Sets, Dates, typed arrays and Buffers survive the crossing both ways', async () => {
    const { rt } = await withWorker()
    const payload = {
      map: new Map([['a', new Date(5)]]),
      set: new Set([1, 2]),
      when: new Date(1_000),
      floats: new Float64Array([1.5, 2.5]),
      bytes: Buffer.from('hi'),
      big: 10n,
    }
    const { got } = await rt.node('a-x').send({ type: 'crunch', payload }).return()
    expect(got.map).toBeInstanceOf(Map)
    expect(got.map.get('a')).toEqual(new Date(5))
    expect(got.set).toEqual(new Set([1, 2]))
    expect(got.when).toEqual(new Date(1_000))
    expect(got.floats).toBeInstanceOf(Float64Array)
    expect([...got.floats]).toEqual([1.5, 2.5])
    expect(Buffer.isBuffer(got.bytes)).toBe(true)
    expect(got.bytes.toString()).toBe('hi')
    expect(got.big).toBe(10n)
  })

  it("a node disposed in its worker: other threads' handles of it say DISPOSED, its id is unknown", async () => {
    const { rt } = await withWorker()
    const handle = rt.node('a-x')
    await expect(
      rt
        .node('a-disposer')
        .send({ type: 'dispose', payload: { id: 'a-x' } })
        .return(),
    ).resolves.toBe('disposed')
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(() => handle.send({ type: 'crunch' })).toThrow(expect.objectContaining({ code: 'DISPOSED' }))
    expect(() => rt.node('a-x')).toThrow(expect.objectContaining({ code: 'UNKNOWN_NODE' }))
    // A new node may take the id (here on the main thread): sends reach it, not the old one.
    rt.createNode('a-x').on('crunch', () => 'the new a-x')
    await expect(rt.node('a-x').send({ type: 'crunch' }).return()).resolves.toBe('the new a-x')
  })

  it('a worker that dies mid-flow fails only its own entries with NODE_LOST, promptly; its nodes leave', async () => {
    const rt = runtime()
    const main = rt.createNode('main')
    main.on('crunch', () => 'main crunched')
    await rt.worker(cruncher, { workerData: { prefix: 'doomed', nodes: ['1', '2'] } })
    const other = await rt.worker(cruncher, { workerData: { prefix: 'ok', nodes: ['1'] } })
    const nodes = rt.createNodeArray([main, rt.node('doomed-1'), rt.node('ok-1')])
    const started = Date.now()
    const dying = rt.node('doomed-1').send({ type: 'die' })
    const error = await dying.return({ timeout: 5_000 }).catch((e) => e)
    expect(error.code).toBe('HANDLER_FAILED')
    expect(error.cause.code).toBe('NODE_LOST')
    expect(error.cause.message).toContain('doomed-1')
    expect(Date.now() - started).toBeLessThan(3_000)
    // Its nodes have left: by id they are unknown, the handle says DISPOSED.
    expect(() => rt.node('doomed-2')).toThrow(expect.objectContaining({ code: 'UNKNOWN_NODE' }))
    expect(() => nodes.send({ type: 'crunch' })).toThrow(expect.objectContaining({ code: 'DISPOSED' }))
    // The other worker and the main thread go on.
    const results = await rt
      .createNodeArray([main, rt.node('ok-1')])
      .send({ type: 'crunch', payload: 1 })
      .return()
    expect(results['ok-1'].threadId).toBe(other.threadId)
    expect(results.main).toBe('main crunched')
    // The lost branch is recorded as failed in the history.
    const branch = rt.trace((await dying).id).branches[0]
    expect(branch).toMatchObject({ node: 'doomed-1', outcome: 'rejected' })
  })

  it('a worker dying fails its entries in a fan-out while the other targets arrive', async () => {
    const rt = runtime()
    const main = rt.createNode('main')
    main.on('die', () => 'main survives')
    await rt.worker(cruncher, { workerData: { prefix: 'doomed', nodes: ['1'] } })
    const survivor = rt.createNode('survivor')
    survivor.on('die', async () => {
      await new Promise((resolve) => setTimeout(resolve, 50))
      return 'survivor survives'
    })
    const settled = await rt
      .createNodeArray([main, rt.node('doomed-1'), survivor])
      .send({ type: 'die' })
      .return({ settled: true })
    expect(settled.main).toEqual({ status: 'fulfilled', value: 'main survives' })
    expect(settled.survivor).toEqual({ status: 'fulfilled', value: 'survivor survives' })
    expect(settled['doomed-1'].status).toBe('rejected')
    expect(settled['doomed-1'].reason.code).toBe('NODE_LOST')
  })

  it('terminate() ends one worker: its nodes leave, waiting entries fail with NODE_LOST', async () => {
    const { rt, worker } = await withWorker()
    const pending = rt.node('a-x').send({ type: 'slow', payload: { ms: 10_000 } })
    await new Promise((resolve) => setTimeout(resolve, 20))
    await worker.terminate()
    const error = await pending.return().catch((e) => e)
    expect(error.cause.code).toBe('NODE_LOST')
    expect(() => rt.node('a-y')).toThrow(expect.objectContaining({ code: 'UNKNOWN_NODE' }))
  })

  it('shutdown() with flows running in workers ends them and settles their entries', async () => {
    const rt = initializeHappen()
    const worker = await rt.worker(cruncher, { workerData: { prefix: 's', nodes: ['1'] } })
    const pending = rt.node('s-1').send({ type: 'slow', payload: { ms: 10_000 } })
    await new Promise((resolve) => setTimeout(resolve, 20))
    const started = Date.now()
    await rt.shutdown()
    expect(Date.now() - started).toBeLessThan(2_000)
    const error = await pending.return().catch((e) => e)
    expect(error.code).toBe('HANDLER_FAILED')
    expect(['SHUTDOWN', 'NODE_LOST']).toContain(error.cause.code)
    // The thread is gone: terminating again is harmless.
    await worker.terminate()
    await expect(rt.worker(cruncher)).rejects.toMatchObject({ code: 'SHUTDOWN' })
  })

  it('a module that throws at its top level rejects worker() with its error', async () => {
    const rt = runtime()
    await expect(rt.worker(new URL('./fixtures/workers/broken.mjs', import.meta.url))).rejects.toThrow(
      'broken on purpose',
    )
    await expect(rt.worker(42)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' })
    await expect(rt.worker(cruncher, { nope: 1 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' })
  })

  it('the process exits by itself when its work is done, workers or not, with or without shutdown()', () => {
    for (const shutdown of ['yes', 'no']) {
      const child = spawnSync(process.execPath, [path.join(here, 'fixtures/workers/exits.mjs'), shutdown], {
        encoding: 'utf8',
        timeout: 15_000,
      })
      expect(child.error).toBeUndefined()
      expect(child.stderr).toBe('')
      expect(child.stdout.trim()).toBe(`done ${shutdown}`)
      expect(child.status).toBe(0)
    }
  })
})
