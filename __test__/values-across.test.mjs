// Issue 21, "Trust nothing on the wire": what crosses a thread or the network is carried exactly
// or refused with a named error, never silently changed; what a thread cannot decode fails the
// entries it carried, never the process; node ids are compared as written; a worker's memory
// can be bounded on its own.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { HappenError, initializeHappen } from 'happen'
import { rejection, thrown } from './helpers.mjs'
import { NATS_URL, skipMessage, spawnReady, stopAll } from './nats/harness.mjs'

const require = (await import('node:module')).createRequire(import.meta.url)
const { checkJson } = require('../lib/transports/nats/wire.js')

const here = path.dirname(fileURLToPath(import.meta.url))
const bounded = new URL('./fixtures/workers/bounded.mjs', import.meta.url)
const cruncher = new URL('./fixtures/workers/cruncher.mjs', import.meta.url)

/** A value `levels` objects deep: { a: { a: ... {} } }. */
function nested(levels) {
  let value = {}
  for (let i = 1; i < levels; i++) value = { a: value }
  return value
}

/** How many objects deep `nested` went. */
function depthOf(value) {
  let levels = 0
  for (; value !== null && typeof value === 'object'; value = value.a) levels++
  return levels
}

const runtimes = []
function runtime(config) {
  const rt = initializeHappen(config)
  runtimes.push(rt)
  return rt
}
afterEach(async () => {
  while (runtimes.length) await runtimes.pop().shutdown()
})

/** The one entry of a single-target send, settled: { value } or { code, message }. */
async function entry(sent) {
  const entries = await sent.return({ settled: true })
  const [{ status, value, reason }] = Object.values(entries)
  return status === 'fulfilled' ? { value } : { code: reason.code, message: reason.message }
}

/** checkJson's refusal of `value` as the payload, or null when it passes. */
function refusal(value) {
  try {
    checkJson(value, 'payload', () => 'The payload')
    return null
  } catch (error) {
    expect(error).toBeInstanceOf(HappenError)
    expect(error.code).toBe('NOT_SERIALIZABLE')
    return error.message
  }
}

describe('NATS values: JSON carries them as they are, or they are refused (checkJson, no server)', () => {
  it('each value JSON would change or drop is refused, naming the field and what JSON would make of it', () => {
    const cyclic = { name: 'loop' }
    cyclic.self = cyclic
    const cases = [
      [{ when: new Date(0) }, 'payload.when is a Date, which JSON turns into a string'],
      [{ pattern: /a+/g }, 'payload.pattern is a RegExp'],
      [{ bytes: new Uint8Array(2) }, 'payload.bytes is a Uint8Array'],
      [{ floats: new Float64Array(1) }, 'payload.floats is a Float64Array'],
      [{ file: Buffer.from('hi') }, 'payload.file is a Buffer'],
      [{ raw: new ArrayBuffer(4) }, 'payload.raw is an ArrayBuffer'],
      [{ view: new DataView(new ArrayBuffer(4)) }, 'payload.view is a DataView'],
      [{ failure: new TypeError('no') }, 'payload.failure is an Error (TypeError)'],
      [{ list: [1, undefined] }, 'payload.list[1] is undefined, which JSON turns into null'],
      [{ list: [1, , 3] }, 'payload.list[1] is a hole of a sparse array'],
      [{ ratio: Number.NaN }, 'payload.ratio is NaN'],
      [{ big: Number.POSITIVE_INFINITY }, 'payload.big is Infinity'],
      [{ small: [Number.NEGATIVE_INFINITY] }, 'payload.small[0] is -Infinity'],
      [{ zero: -0 }, 'payload.zero is -0, which JSON turns into 0'],
      [{ boxed: Object(1) }, 'payload.boxed is a boxed Number'],
      [{ map: new Map() }, 'payload.map is a Map, which JSON cannot carry'],
      [{ set: new Set([1]) }, 'payload.set is a Set'],
      [{ callback() {} }, 'payload.callback is a function (callback)'],
      [{ tag: Symbol('t') }, 'payload.tag is a Symbol'],
      [{ count: 10n }, 'payload.count is a BigInt'],
      [cyclic, 'payload.self refers back to one of its parents (a cycle)'],
      [new Date(0), 'payload is a Date'],
      [Number.NaN, 'payload is NaN'],
    ]
    for (const [value, reason] of cases) {
      expect(refusal(value)).toContain(`The payload cannot be sent over NATS: ${reason}`)
    }
  })

  it('plain data passes, and so do class instances, an own toJSON (the user chose it), and undefined fields', () => {
    class Point {
      constructor(x, y) {
        this.x = x
        this.y = y
      }
    }
    const money = { cents: 150, toJSON: () => '1.50' }
    const passes = [
      { id: '123', qty: 3, price: 9.99, tags: ['a', 'b'], nested: { ok: true, none: null } },
      [1, 'two', { three: 3 }, [4]],
      'text',
      0,
      -1.5,
      Number.MAX_VALUE,
      { optional: undefined },
      undefined,
      null,
      [new Point(1, 2), new Point(3, 4)],
      { money },
      Object.assign(Object.create(null), { a: 1 }),
    ]
    for (const value of passes) expect(refusal(value)).toBeNull()
  })

  it('nesting: 1,000 levels pass; 1,001 and 10,000 are refused naming the depth and the path prefix', () => {
    expect(refusal(nested(1000))).toBeNull()
    expect(JSON.parse(JSON.stringify(nested(1000)))).toEqual(nested(1000))
    const past = 'The payload cannot be sent over NATS: payload.a.a.a… is nested more than 1000 levels'
    expect(refusal(nested(1001))).toBe(past)
    expect(refusal(nested(10_000))).toBe(past)
    let arrays = []
    for (let i = 1; i < 1001; i++) arrays = [arrays]
    expect(refusal(arrays)).toContain('payload[0][0][0]… is nested more than 1000 levels')
    expect(refusal({ list: [{ ok: 1 }, nested(1000)] })).toContain('payload.list[1].a… is nested more than 1000')
  })

  it('a value that cannot even be read (a Proxy whose traps throw) is refused, not thrown through', () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('trap')
        },
        ownKeys() {
          throw new Error('trap')
        },
      },
    )
    expect(refusal({ inner: hostile })).toContain('payload could not be read (trap)')
  })
})

describe('worker threads: values cross exactly, by structured clone', () => {
  it('what JSON would change crosses to a worker node and back unchanged', async () => {
    const rt = runtime()
    await rt.worker(bounded, { workerData: { prefix: 'exact' } })
    const failure = new TypeError('no')
    const sparse = [1, , 3]
    const payload = {
      when: new Date(5),
      pattern: /a+/g,
      bytes: new Uint8Array([1, 2]),
      file: Buffer.from('hi'),
      raw: new ArrayBuffer(2),
      failure,
      list: [1, undefined, Number.NaN, Number.POSITIVE_INFINITY, -0],
      sparse,
      map: new Map([['k', 1]]),
      count: 10n,
    }
    const back = await rt.node('exact-deep').send({ type: 'echo', payload }).return()
    expect(back.when).toBeInstanceOf(Date)
    expect(back.when.getTime()).toBe(5)
    expect(back.pattern).toBeInstanceOf(RegExp)
    expect(back.pattern.flags).toBe('g')
    expect(back.bytes).toBeInstanceOf(Uint8Array)
    expect([...back.bytes]).toEqual([1, 2])
    expect(Buffer.from(back.file).toString()).toBe('hi')
    expect(back.raw).toBeInstanceOf(ArrayBuffer)
    expect(back.failure).toBeInstanceOf(TypeError)
    expect(back.failure.message).toBe('no')
    expect(back.list).toHaveLength(5)
    expect(1 in back.list).toBe(true)
    expect(back.list[1]).toBeUndefined()
    expect(back.list[2]).toBeNaN()
    expect(back.list[3]).toBe(Number.POSITIVE_INFINITY)
    expect(Object.is(back.list[4], -0)).toBe(true)
    expect(1 in back.sparse).toBe(false)
    expect(back.map.get('k')).toBe(1)
    expect(back.count).toBe(10n)
  })

  it('an Error structured clone would change (its own kind, or fields such as code) is refused, naming the field', async () => {
    const rt = runtime()
    await rt.worker(bounded, { workerData: { prefix: 'errs' } })
    class PaymentError extends Error {}
    const coded = new RangeError('declined')
    coded.code = 'E_DECLINED'
    const cases = [
      [{ failure: new PaymentError('x') }, 'event.payload.failure is an Error of its own kind (PaymentError)'],
      [{ list: [coded] }, 'event.payload.list[0] is a RangeError with fields structured clone drops (code)'],
      [new AggregateError([]), 'event.payload is an Error of its own kind (AggregateError)'],
    ]
    for (const [payload, reason] of cases) {
      const error = await rejection(rt.node('errs-deep').send({ type: 'echo', payload }))
      expect(error.code).toBe('NOT_SERIALIZABLE')
      expect(error.message).toContain(`The event cannot cross to another thread: ${reason}`)
    }
    // A flow's failure crosses whole as before: message, name, code, and a HANDLER_FAILED's details.
    const main = rt.createNode('main')
    main.on('fail', () => {
      throw coded
    })
    const failed = await rejection(
      rt
        .node('errs-deep')
        .send({ type: 'rethrow', payload: { to: 'main' } })
        .return(),
    )
    const inner = failed.errors['errs-deep']
    expect(inner).toBeInstanceOf(HappenError)
    expect(inner.code).toBe('HANDLER_FAILED')
    expect(inner.errors.main.message).toBe('declined')
  })
})

describe('worker threads: nesting depth and what a thread cannot decode', () => {
  it('a payload of 1,000 levels reaches a worker node; 1,001 is refused before delivery, naming the path', async () => {
    const rt = runtime()
    await rt.worker(bounded, { workerData: { prefix: 'p' } })
    expect(
      await rt
        .node('p-deep')
        .send({ type: 'take', payload: nested(1000) })
        .return(),
    ).toBe(1000)
    const error = await rejection(rt.node('p-deep').send({ type: 'take', payload: nested(1001) }))
    expect(error).toBeInstanceOf(HappenError)
    expect(error.code).toBe('NOT_SERIALIZABLE')
    expect(error.message).toBe(
      'The event cannot cross to another thread: event.payload.a.a.a… is nested more than 1000 levels',
    )
    const batch = await rejection(rt.node('p-deep').send([{ type: 'take' }, { type: 'take', payload: nested(1001) }]))
    expect(batch.message).toContain('events[1].payload.a.a.a… is nested more than 1000 levels')
  })

  it("a worker's result nested 5,000 levels fails that entry with NOT_SERIALIZABLE; the process lives, the others arrive", async () => {
    const rt = runtime()
    await rt.worker(bounded, { workerData: { prefix: 'r' } })
    const main = rt.createNode('main')
    main.on('give-deep', (event) => depthOf(nested(event.payload)))
    const settled = await rt
      .createNodeArray([main, rt.node('r-deep')])
      .send({ type: 'give-deep', payload: 5000 })
      .return({ settled: true })
    expect(settled.main).toEqual({ status: 'fulfilled', value: 5000 })
    expect(settled['r-deep'].status).toBe('rejected')
    expect(settled['r-deep'].reason.code).toBe('NOT_SERIALIZABLE')
    expect(settled['r-deep'].reason.message).toBe(
      'The result cannot cross to another thread: result.a.a.a… is nested more than 1000 levels',
    )
    // Just below the bound the result crosses whole.
    expect(depthOf(await rt.node('r-deep').send({ type: 'give-deep', payload: 1000 }).return())).toBe(1000)
    expect(await rt.node('r-deep').send({ type: 'ping' }).return()).toBe('pong')
  })

  it('a payload a worker sends nested 5,000 levels is refused in the worker; the node it was for never runs', async () => {
    const rt = runtime()
    await rt.worker(bounded, { workerData: { prefix: 's' } })
    let ran = 0
    rt.createNode('main').on('take', () => ++ran)
    const refused = await rt
      .node('s-deep')
      .send({ type: 'send-deep', payload: { to: 'main', levels: 5000 } })
      .return()
    expect(refused).toEqual({
      code: 'NOT_SERIALIZABLE',
      cause: null,
      message: 'The event cannot cross to another thread: event.payload.a.a.a… is nested more than 1000 levels',
    })
    expect(ran).toBe(0)
    const crossed = await rt
      .node('s-deep')
      .send({ type: 'send-deep', payload: { to: 'main', levels: 1000 } })
      .return()
    expect(crossed).toEqual({ value: 1 })
  })

  it('a thread whose stack cannot decode what arrives fails those entries, naming the node and the sender, both ways', async () => {
    const rt = runtime()
    // 0.5 MB of stack decodes about 600 levels: 1,000 (allowed where it is sent) does not fit.
    await rt.worker(bounded, { workerData: { prefix: 'small' }, resourceLimits: { stackSizeMb: 0.5 } })
    await rt.worker(bounded, { workerData: { prefix: 'big' } })
    const main = rt.createNode('main')
    main.on('take', () => 'main took it')

    // Main -> the small thread: its entry fails; the other target of the fan-out is served.
    const fan = await rt
      .createNodeArray([main, rt.node('small-deep')])
      .send({ type: 'take', payload: nested(1000) })
      .return({ settled: true })
    expect(fan.main).toEqual({ status: 'fulfilled', value: 'main took it' })
    expect(fan['small-deep'].reason.code).toBe('NOT_SERIALIZABLE')
    expect(fan['small-deep'].reason.message).toMatch(
      /^The input of 'take' sent to node 'small-deep' from outside any node could not be decoded in thread \d+: RangeError: Maximum call stack size exceeded$/,
    )
    // A payload from another worker, and a result coming back to the small thread.
    const sent = await entry(
      rt.node('big-deep').send({ type: 'send-deep', payload: { to: 'small-deep', levels: 1000 } }),
    )
    expect(sent.value).toMatchObject({ code: 'HANDLER_FAILED', cause: 'NOT_SERIALIZABLE' })
    expect(sent.value.message).toContain("sent to node 'small-deep' from node 'big-deep' could not be decoded")
    const fetched = await entry(
      rt.node('small-deep').send({ type: 'fetch-deep', payload: { to: 'big-deep', levels: 1000 } }),
    )
    expect(fetched.value).toMatchObject({ code: 'HANDLER_FAILED', cause: 'NOT_SERIALIZABLE' })
    expect(fetched.value.message).toMatch(
      /^The result of node 'big-deep' could not be decoded in thread \d+: RangeError/,
    )
    // The small thread goes on serving, and takes what fits its stack.
    expect(await rt.node('small-deep').send({ type: 'ping' }).return()).toBe('pong')
    expect(
      await rt
        .node('small-deep')
        .send({ type: 'take', payload: nested(300) })
        .return(),
    ).toBe(300)
  })

  it('a main thread that cannot decode what a worker sends fails those entries and lives (a child process with a small stack)', () => {
    const child = spawnSync(
      process.execPath,
      ['--stack-size=250', path.join(here, 'fixtures/workers/small-stack.mjs')],
      { encoding: 'utf8', timeout: 15_000 },
    )
    expect(child.stderr).toBe('')
    expect(child.status).toBe(0)
    const { result, payload, after, started } = JSON.parse(child.stdout)
    expect(result).toEqual({
      code: 'NOT_SERIALIZABLE',
      message:
        "The result of node 'w-deep' could not be decoded in thread 0: RangeError: Maximum call stack size exceeded",
    })
    expect(payload).toEqual({
      code: 'HANDLER_FAILED',
      cause: 'NOT_SERIALIZABLE',
      message:
        "The input of 'take' sent to node 'main' from node 'w-deep' could not be decoded in thread 0: RangeError: Maximum call stack size exceeded",
    })
    expect(after).toEqual({ value: 'main took it' })
    // A module that throws such a value at its top level: worker() rejects, naming the module.
    expect(started.code).toBe('NOT_SERIALIZABLE')
    expect(started.message).toMatch(/^The worker for data:.* sent what this thread cannot decode \(RangeError/)
  })
})

// Node 24 (24.22) mostly aborts the whole process (V8 "Reached heap limit") when a worker thread
// passes its maxOldGenerationSizeMb, happen or not (a plain Worker did in 4 of 6 runs); Node 20
// ends the worker alone (ERR_WORKER_OUT_OF_MEMORY). See the README's worker section.
const abortsOnWorkerHeapLimit = Number(process.versions.node.split('.')[0]) >= 24

describe('worker(module, { resourceLimits })', () => {
  it.skipIf(abortsOnWorkerHeapLimit)(
    "bounds one worker's heap: over it, that worker's entries fail NODE_LOST; the process and other nodes go on",
    async () => {
      const rt = runtime()
      await rt.worker(bounded, { workerData: { prefix: 'hogs' }, resourceLimits: { maxOldGenerationSizeMb: 16 } })
      await rt.worker(bounded, { workerData: { prefix: 'calm' } })
      const main = rt.createNode('main')
      main.on('hog', () => 'main is fine')
      const settled = await rt
        .createNodeArray([main, rt.node('hogs-hog'), rt.node('calm-deep')])
        .send({ type: 'hog' })
        .return({ settled: true, timeout: 15_000 })
      expect(settled.main).toEqual({ status: 'fulfilled', value: 'main is fine' })
      expect(settled['calm-deep']).toEqual({ status: 'fulfilled', value: null })
      expect(settled['hogs-hog'].status).toBe('rejected')
      expect(settled['hogs-hog'].reason.code).toBe('NODE_LOST')
      expect(settled['hogs-hog'].reason.message).toContain('memory limit')
      // Its nodes left with it; the other worker still serves.
      expect(thrown(() => rt.node('hogs-deep')).code).toBe('UNKNOWN_NODE')
      expect(await rt.node('calm-deep').send({ type: 'ping' }).return()).toBe('pong')
    },
  )

  it('is validated: only Node’s four limits, each a positive number, each refusal naming its key', async () => {
    const rt = runtime()
    const refusals = [
      [[], 'options.resourceLimits'],
      ['64', 'options.resourceLimits'],
      [{ maxOldGenerationSize: 64 }, 'options.resourceLimits.maxOldGenerationSize'],
      [{ maxOldGenerationSizeMb: '64' }, 'options.resourceLimits.maxOldGenerationSizeMb'],
      [{ maxYoungGenerationSizeMb: 0 }, 'options.resourceLimits.maxYoungGenerationSizeMb'],
      [{ codeRangeSizeMb: -1 }, 'options.resourceLimits.codeRangeSizeMb'],
      [{ stackSizeMb: Number.NaN }, 'options.resourceLimits.stackSizeMb'],
      [{ stackSizeMb: Number.POSITIVE_INFINITY }, 'options.resourceLimits.stackSizeMb'],
      // Below about 0.2 MB Node's start of the thread ends the whole process.
      [{ stackSizeMb: 0.1 }, 'options.resourceLimits.stackSizeMb'],
    ]
    for (const [resourceLimits, name] of refusals) {
      const error = await rejection(rt.worker(bounded, { resourceLimits }))
      expect(error).toBeInstanceOf(TypeError)
      expect(error.message).toContain(`The "${name}" argument must be`)
    }
  })
})

describe('node ids are compared as written', () => {
  it('an id with a lone surrogate is refused with a TypeError naming the argument, wherever it enters', async () => {
    const rt = runtime()
    for (const id of ['x\ud800', 'x\udbff', '\udc00x']) {
      const created = thrown(() => rt.createNode(id))
      expect(created).toBeInstanceOf(TypeError)
      expect(created.message).toContain('The "id" argument must be a well-formed string')
      expect(thrown(() => rt.node(id)).message).toContain('The "id" argument must be a well-formed string')
    }
    // Both would have become 'x\ufffd' in the core: that node must not answer for them.
    const replacement = rt.createNode('x\ufffd')
    replacement.on('who', () => 'x\ufffd')
    const sent = thrown(() => replacement.send('x\ud800', { type: 'who' }))
    expect(sent).toBeInstanceOf(TypeError)
    expect(sent.message).toContain('The "target" argument must be a well-formed string')
    // Well-formed ids of any script, surrogate pairs included, are ids like any other.
    expect(rt.createNode('emoji-😀').id).toBe('emoji-😀')
    expect(await rt.node('emoji-😀').process({ type: 'none' })).toBeNull()
  })

  it("a worker module's createNode refuses them too: worker() rejects with its TypeError", async () => {
    const rt = runtime()
    const error = await rejection(rt.worker(cruncher, { workerData: { prefix: 'x\ud800', nodes: ['1'] } }))
    expect(error.name).toBe('TypeError')
    expect(error.message).toContain('The "id" argument must be a well-formed string')
    expect(thrown(() => rt.node('x\ufffd-1')).code).toBe('UNKNOWN_NODE')
  })
})

if (!NATS_URL) console.warn(`skipping the NATS part of values-across.test.mjs: ${skipMessage}`)

describe.skipIf(!NATS_URL)('over NATS (a host process)', () => {
  let happen
  let local
  beforeAll(async () => {
    await spawnReady(path.join(here, 'fixtures/values-host.mjs'), [NATS_URL], 'values-host')
    happen = await initializeHappen({ transport: { type: 'nats', servers: [NATS_URL], heartbeat: 200 } })
    local = happen.createNode('values-local')
    await happen.ready()
  })
  afterAll(async () => {
    await happen?.shutdown()
    await stopAll()
  })

  it('a Date crosses a worker thread as a Date and is refused over NATS, naming the field; nothing reaches the host', async () => {
    const threads = runtime()
    await threads.worker(bounded, { workerData: { prefix: 'd' } })
    const payload = { order: 'A-1', when: new Date(0) }
    const back = await threads.node('d-deep').send({ type: 'echo', payload }).return()
    expect(back.when).toBeInstanceOf(Date)

    const runsBefore = await local.send('values-host', { type: 'runs' }).return()
    const error = await rejection(local.send('values-host', { type: 'echo', payload }))
    expect(error).toBeInstanceOf(HappenError)
    expect(error.code).toBe('NOT_SERIALIZABLE')
    expect(error.message).toBe(
      "The payload of 'echo' cannot be sent over NATS: payload.when is a Date, which JSON turns into a string",
    )
    for (const [bad, field] of [
      [{ list: [1, undefined] }, 'payload.list[1] is undefined'],
      [{ ratio: Number.NaN }, 'payload.ratio is NaN'],
      [{ zero: -0 }, 'payload.zero is -0'],
      [{ bytes: Buffer.from('x') }, 'payload.bytes is a Buffer'],
    ]) {
      expect((await rejection(local.send('values-host', { type: 'echo', payload: bad }))).message).toContain(field)
    }
    const batch = await rejection(local.send('values-host', [{ type: 'echo' }, { type: 'echo', payload: /x/ }]))
    expect(batch.message).toContain('events[1].payload is a RegExp')
    expect(await local.send('values-host', { type: 'runs' }).return()).toBe(runsBefore)
  })

  it("a host's result JSON would change fails that entry, naming the field; an own toJSON crosses", async () => {
    for (const [kind, field] of [
      ['date', 'result.when is a Date'],
      ['nan', 'result.ratio is NaN'],
      ['undefined-in-array', 'result.list[1] is undefined'],
    ]) {
      const failed = await entry(local.send('values-host', { type: 'give', payload: kind }))
      expect(failed.code).toBe('NOT_SERIALIZABLE')
      expect(failed.message).toContain(field)
    }
    expect(await local.send('values-host', { type: 'give', payload: 'own-toJSON' }).return()).toEqual({
      money: '1.50',
    })
  })

  it('nesting: 1,000 levels cross both ways; 1,001 are refused on either side, naming the depth and path', async () => {
    expect(await local.send('values-host', { type: 'take', payload: nested(1000) }).return()).toBe(1000)
    expect(depthOf(await local.send('values-host', { type: 'give-deep', payload: 1000 }).return())).toBe(1000)
    const sent = await rejection(local.send('values-host', { type: 'take', payload: nested(10_000) }))
    expect(sent.code).toBe('NOT_SERIALIZABLE')
    expect(sent.message).toBe(
      "The payload of 'take' cannot be sent over NATS: payload.a.a.a… is nested more than 1000 levels",
    )
    const answered = await entry(local.send('values-host', { type: 'give-deep', payload: 1001 }))
    expect(answered.code).toBe('NOT_SERIALIZABLE')
    expect(answered.message).toContain('result.a.a.a… is nested more than 1000 levels')
  })
})
