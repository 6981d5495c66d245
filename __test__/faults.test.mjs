// Issue 3, part 2: fault isolation. Whatever one node's flow does — throw, reject, throw a
// non-Error, hand back a hostile thenable, never settle, loop, send in cycles, rewire the
// handlers while running — every other node's result still arrives, and the failure names
// the node, the event type and the flow step.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { HappenError, initializeHappen } from 'happen'

const tick = () => new Promise((resolve) => setImmediate(resolve))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let unhandled = []
const onUnhandled = (reason) => unhandled.push(reason)
beforeAll(() => process.on('unhandledRejection', onUnhandled))
afterAll(() => {
  process.off('unhandledRejection', onUnhandled)
})

let happen
let a
let b
let c
let nodes

beforeEach(() => {
  happen = initializeHappen()
  a = happen.createNode('a')
  b = happen.createNode('b')
  c = happen.createNode('c')
  nodes = happen.createNodeArray([a, b, c])
  b.on('job', (event, context) => `b did ${event.payload}`)
  c.on('job', async (event) => {
    await sleep(1)
    return `c did ${event.payload}`
  })
})

/** The HANDLER_FAILED error of a fan-out where only `a` fails, checked in full. */
async function expectOnlyAFailed(send, { step, type = 'job', check }) {
  const result = await send()
  const error = await result.return().then(
    () => {
      throw new Error('expected return() to reject')
    },
    (e) => e,
  )
  expect(error).toBeInstanceOf(HappenError)
  expect(error.code).toBe('HANDLER_FAILED')
  expect(error.results).toEqual({ b: 'b did 1', c: 'c did 1' })
  expect(Object.keys(error.errors)).toEqual(['a'])
  expect(error.failures).toHaveLength(1)
  expect(error.failures[0]).toMatchObject({ node: 'a', type, step })
  expect(error.message).toContain("'a'")
  expect(error.message).toContain(`'${type}'`)
  expect(error.message).toContain(`'${step}'`)
  if (check) check(error.errors.a, error)
  // allSettled-style: every target accounted for exactly once.
  const settled = await result.return({ settled: true })
  expect(Object.keys(settled).sort()).toEqual(['a', 'b', 'c'])
  expect(settled.a.status).toBe('rejected')
  expect(settled.b).toEqual({ status: 'fulfilled', value: 'b did 1' })
  expect(settled.c).toEqual({ status: 'fulfilled', value: 'c did 1' })
  // The history records the same outcomes.
  const tree = result.trace()
  const outcomes = Object.fromEntries(tree.branches.map((br) => [br.node, br.outcome]))
  expect(outcomes).toEqual({ a: 'rejected', b: 'fulfilled', c: 'fulfilled' })
  expect(tree.branches.find((br) => br.node === 'a').error).toContain(step)
  return error
}

const job = { type: 'job', payload: 1 }

describe("one failing node never loses the others' results", () => {
  it('a synchronous throw', async () => {
    a.on('job', function validateJob() {
      throw new Error('bad job')
    })
    await expectOnlyAFailed(() => nodes.send(job), {
      step: 'validateJob',
      check: (reason) => expect(reason.message).toBe('bad job'),
    })
  })

  it('an async rejection', async () => {
    a.on('job', async function fetchJob() {
      await sleep(2)
      throw new RangeError('too late')
    })
    await expectOnlyAFailed(() => nodes.send(job), {
      step: 'fetchJob',
      check: (reason) => expect(reason).toBeInstanceOf(RangeError),
    })
  })

  it.each([
    ['a string', 'plain string'],
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['a symbol', Symbol('odd')],
    ['a plain object', { reason: 'object' }],
    ['a frozen array', Object.freeze(['x'])],
  ])('a thrown non-Error: %s (kept as thrown)', async (label, thrown) => {
    a.on('job', function throwsOdd() {
      throw thrown
    })
    await expectOnlyAFailed(() => nodes.send(job), {
      step: 'throwsOdd',
      check: (reason, error) => {
        expect(reason).toBe(thrown)
        expect(typeof error.message).toBe('string')
      },
    })
  })

  it('a thrown Proxy whose every trap throws', async () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('trap: get')
        },
        getPrototypeOf() {
          throw new Error('trap: getPrototypeOf')
        },
        ownKeys() {
          throw new Error('trap: ownKeys')
        },
        has() {
          throw new Error('trap: has')
        },
      },
    )
    a.on('job', function throwsProxy() {
      throw hostile
    })
    await expectOnlyAFailed(() => nodes.send(job), {
      step: 'throwsProxy',
      check: (reason) => expect(reason).toBe(hostile),
    })
  })

  it('an async rejection with undefined', async () => {
    a.on('job', function rejectsNothing() {
      return Promise.reject(undefined)
    })
    await expectOnlyAFailed(() => nodes.send(job), {
      step: 'rejectsNothing',
      check: (reason) => expect(reason).toBeUndefined(),
    })
  })

  it('a rejected Promise of a next function', async () => {
    a.on('job', function planNext() {
      return new Promise((resolve, reject) => setTimeout(() => reject(new Error('no next step')), 2))
    })
    await expectOnlyAFailed(() => nodes.send(job), { step: 'planNext' })
  })

  it('a step that throws mid-flow names that step; the earlier steps are in the trace', async () => {
    function loadOrder() {
      return chargeCard
    }
    async function chargeCard() {
      await tick()
      return shipOrder
    }
    function shipOrder() {
      throw new Error('no courier')
    }
    a.on('job', function startJob() {
      return loadOrder
    })
    const error = await expectOnlyAFailed(() => nodes.send(job), { step: 'shipOrder' })
    expect(error.errors.a.message).toBe('no courier')
    const result = await a.send(job)
    await result.return({ settled: true })
    const branch = result.trace().branches[0]
    expect(branch.steps.map((s) => s.name)).toEqual(['startJob', 'loadOrder', 'chargeCard', 'shipOrder'])
    expect(branch.outcome).toBe('rejected')
    expect(branch.error).toMatch(/shipOrder: no courier/)
  })

  it('a thenable whose then() throws', async () => {
    a.on('job', function odd() {
      return {
        then() {
          throw new Error('then exploded')
        },
      }
    })
    await expectOnlyAFailed(() => nodes.send(job), {
      step: 'odd',
      check: (reason) => expect(reason.message).toBe('then exploded'),
    })
  })

  it('a value whose then getter throws', async () => {
    a.on('job', function odd() {
      return Object.defineProperty({}, 'then', {
        get() {
          throw new Error('getter exploded')
        },
      })
    })
    await expectOnlyAFailed(() => nodes.send(job), {
      step: 'odd',
      check: (reason) => expect(reason.message).toBe('getter exploded'),
    })
  })

  it('a thenable that calls back twice and then throws counts once', async () => {
    a.on('job', function twice() {
      return {
        then(resolve, reject) {
          resolve('first')
          resolve('second')
          reject(new Error('late'))
          throw new Error('later')
        },
      }
    })
    const result = await nodes.send(job)
    await expect(result.return()).resolves.toEqual({ a: 'first', b: 'b did 1', c: 'c did 1' })
  })

  it('a throwing pattern predicate fails only that node, at step "(pattern predicate)"', async () => {
    a.on(
      (type) => {
        if (type === 'job') throw new Error('predicate broke')
        return false
      },
      () => 'never',
    )
    await expectOnlyAFailed(() => nodes.send(job), { step: '(pattern predicate)' })
  })

  it('a node whose second handler is still running is not done when its first handler is', async () => {
    let release
    a.on('job', () => 'first, at once')
    a.on('job', () => new Promise((resolve) => (release = resolve)))
    const result = await a.send(job)
    let settled = false
    const answer = result.return().then((value) => ((settled = true), value))
    await sleep(5)
    expect(settled).toBe(false)
    release('second, later')
    await expect(answer).resolves.toBe('first, at once')
  })

  it('a failing second handler of a node fails that node; the first handler still ran', async () => {
    const ran = []
    a.on('job', () => {
      ran.push('first')
      return 'first result'
    })
    a.on('job', function second() {
      ran.push('second')
      throw new Error('second broke')
    })
    await expectOnlyAFailed(() => nodes.send(job), { step: 'second' })
    expect(ran).toEqual(['first', 'second'])
  })

  it('a runaway flow (10,000+ steps) fails with FLOW_TOO_LONG inside; the others finish', async () => {
    a.on('job', function spin() {
      return spin
    })
    await expectOnlyAFailed(() => nodes.send(job), {
      step: 'spin',
      check: (reason) => {
        expect(reason.code).toBe('FLOW_TOO_LONG')
        expect(reason.message).toContain("'a'")
        expect(reason.message).toContain("'job'")
      },
    })
  })

  it('a failing batch flow names the batch type', async () => {
    const d = happen.createNode('d')
    a.on('job', function batchJob(events) {
      if (Array.isArray(events)) throw new Error('batch refused')
      return 'single'
    })
    d.on('job', (events) => (Array.isArray(events) ? 'b ok' : 'single'))
    const result = await happen.createNodeArray([a, d]).send([job, job])
    const settled = await result.return({ settled: true })
    expect(settled.a.status).toBe('rejected')
    expect(settled.d).toEqual({ status: 'fulfilled', value: 'b ok' })
    const error = await result.return().catch((e) => e)
    expect(error.failures[0]).toMatchObject({ node: 'a', type: 'job', step: 'batchJob' })
  })

  it('failures nobody asks about raise no unhandled rejection', async () => {
    unhandled = []
    a.on('job', () => Promise.reject(new Error('ignored')))
    b.on('job', () => {
      throw new Error('ignored too')
    })
    await nodes.send(job)
    await a.send(job)
    await sleep(20)
    expect(unhandled).toEqual([])
  })
})

describe('a handler that never settles', () => {
  it('return({ timeout }) rejects with TIMEOUT naming it and holding the finished results', async () => {
    a.on('job', function hang() {
      return new Promise(() => {})
    })
    const result = await nodes.send(job)
    const started = Date.now()
    const error = await result.return({ timeout: 30 }).catch((e) => e)
    expect(Date.now() - started).toBeGreaterThanOrEqual(25)
    expect(error).toBeInstanceOf(HappenError)
    expect(error.code).toBe('TIMEOUT')
    expect(error.message).toContain("'a'")
    expect(error.message).not.toContain("'b'")
    expect(error.pending).toEqual(['a'])
    expect(error.results).toEqual({ b: 'b did 1', c: 'c did 1' })
    expect(result.trace().branches.find((br) => br.node === 'a').outcome).toBe('running')
    // The same result can still be asked again, and other sends are unaffected.
    await expect(result.return({ timeout: 5 })).rejects.toMatchObject({ code: 'TIMEOUT' })
    await expect(b.process(job)).resolves.toBe('b did 1')
  })

  it('a hanging step after a few good ones is reported as still running', async () => {
    a.on(
      'job',
      () =>
        function wait() {
          return new Promise(() => {})
        },
    )
    const result = await a.send(job)
    await expect(result.return({ timeout: 10 })).rejects.toMatchObject({ code: 'TIMEOUT', pending: ['a'] })
    expect(result.trace().branches[0].steps.map((s) => s.name)).toEqual(["on 'job'", 'wait'])
  })
})

describe('cycles of sends between nodes', () => {
  it('a synchronous ping-pong of 5,000 hops completes without overflowing the stack', async () => {
    let hops = 0
    let finish
    const finished = new Promise((resolve) => (finish = resolve))
    const bounce = (next) => (event) => {
      hops++
      if (event.payload < 5000) next.send(next, { type: 'ping', payload: event.payload + 1 })
      else finish(event.context.causal)
      return 'bounced'
    }
    a.on('ping', bounce(b))
    b.on('ping', bounce(a))
    await expect(a.process({ type: 'ping', payload: 0 })).resolves.toBe('bounced')
    const last = await finished
    expect(hops).toBe(5001)
    // Causality survives the fresh stacks: the last event is 5,000 hops down the first one's chain.
    expect(last.path).toHaveLength(5001) // a (the first sender), then one node per hop
    // The trace of so deep a chain is whole, with no native stack overflow.
    const tree = happen.trace(last.correlationId)
    let depth = 0
    for (let event = tree; event.branches[0].children[0]; event = event.branches[0].children[0]) depth++
    expect(depth).toBe(5000)
    expect(String(tree)).toContain(last.id)
  })

  it('an endless synchronous cycle does not starve timers: return({ timeout }) still fires', async () => {
    let running = true
    let hops = 0
    a.on('loop', () => {
      hops++
      if (running) b.send(b, { type: 'loop' })
    })
    b.on('loop', () => {
      hops++
      if (running) a.send(a, { type: 'loop' })
    })
    a.on('job', () => new Promise(() => {}))
    a.send({ type: 'loop' })
    const error = await a
      .send(job)
      .return({ timeout: 20 })
      .catch((e) => e)
    running = false
    expect(error.code).toBe('TIMEOUT')
    expect(hops).toBeGreaterThan(64)
    await sleep(5)
  })

  it("an async cycle whose every hop awaits the next one's result unwinds with every result", async () => {
    const depthOf = (node, other) => async (event) => {
      if (event.payload === 0) return [node.id]
      const below = await other.send(other, { type: 'dive', payload: event.payload - 1 }).return()
      return [node.id, ...below]
    }
    a.on('dive', depthOf(a, b))
    b.on('dive', depthOf(b, a))
    const path = await a.process({ type: 'dive', payload: 300 })
    expect(path).toHaveLength(301)
    expect(path.slice(0, 4)).toEqual(['a', 'b', 'a', 'b'])
  })

  it('a failure deep in a cycle is the failure of the flows that awaited it, and of no one else', async () => {
    a.on('dive', async (event) => {
      if (event.payload === 0) throw new Error('bottom')
      return b.send(b, { type: 'dive', payload: event.payload - 1 }).return()
    })
    b.on('dive', async (event) => a.send(a, { type: 'dive', payload: event.payload - 1 }).return())
    c.on('dive', () => 'c is fine')
    const result = await happen.createNodeArray([a, c]).send({ type: 'dive', payload: 10 })
    const settled = await result.return({ settled: true })
    expect(settled.c).toEqual({ status: 'fulfilled', value: 'c is fine' })
    expect(settled.a.status).toBe('rejected')
    expect(settled.a.reason.code).toBe('HANDLER_FAILED')
  })
})

describe('handlers that change the handlers while running', () => {
  it('a handler that removes itself runs once; the send it ran for is unaffected', async () => {
    let calls = 0
    const remove = a.on('job', () => {
      calls++
      remove()
      return 'once'
    })
    await expect(nodes.send(job).return()).resolves.toEqual({ a: 'once', b: 'b did 1', c: 'c did 1' })
    await expect(nodes.send(job).return()).resolves.toEqual({ a: null, b: 'b did 1', c: 'c did 1' })
    expect(calls).toBe(1)
  })

  it("a handler that removes another node's handler mid fan-out: that node ends unmatched, no stray call", async () => {
    const d = happen.createNode('d')
    let dCalls = 0
    let removeD
    a.on('job', () => {
      removeD()
      return 'a removed d'
    })
    removeD = d.on('job', () => {
      dCalls++
      return 'd'
    })
    const result = await happen.createNodeArray([a, d]).send(job)
    await expect(result.return()).resolves.toEqual({ a: 'a removed d', d: null })
    expect(dCalls).toBe(0)
  })

  it('a handler registered mid fan-out (reusing a freed handler id) does not run for that send', async () => {
    const d = happen.createNode('d')
    const ran = []
    let removeD
    a.on('job', () => {
      removeD()
      // The core reuses the id just freed: this handler must not run for the current 'job'.
      d.on('other', () => {
        ran.push('other handler ran for job')
        return 'wrong'
      })
      d.on('job', () => {
        ran.push('late job handler')
        return 'late'
      })
      return 'a'
    })
    removeD = d.on('job', () => 'd')
    await expect(happen.createNodeArray([a, d]).send(job).return()).resolves.toEqual({ a: 'a', d: null })
    expect(ran).toEqual([])
    // The next send sees the new handlers.
    await expect(d.process(job)).resolves.toBe('late')
    expect(ran).toEqual(['late job handler'])
  })

  it('a handler that registers more handlers on its own node: they run from the next send on', async () => {
    let added = 0
    a.on('job', () => {
      added++
      a.on('job', () => 'extra')
      return added
    })
    await expect(a.process(job)).resolves.toBe(1)
    await expect(a.process(job)).resolves.toBe(2)
    const result = await a.send(job)
    await result.return()
    expect(result.trace().branches[0].steps).toHaveLength(3) // the first handler and the two added since
  })

  it("a handler that disposes its own node still delivers its result, and the others'", async () => {
    a.on('job', async () => {
      a.dispose()
      await tick()
      return 'a left'
    })
    await expect(nodes.send(job).return()).resolves.toEqual({ a: 'a left', b: 'b did 1', c: 'c did 1' })
    expect(() => a.send(job)).toThrow(expect.objectContaining({ code: 'DISPOSED' }))
  })

  it('a handler that shuts the runtime down: results in flight still arrive', async () => {
    a.on('job', async () => {
      await tick() // b and c have started; a shutdown before their turn would release their handlers
      await happen.shutdown()
      return 'a shut it down'
    })
    await expect(nodes.send(job).return()).resolves.toEqual({ a: 'a shut it down', b: 'b did 1', c: 'c did 1' })
    expect(() => b.send(job)).toThrow(expect.objectContaining({ code: 'SHUTDOWN' }))
  })
})

describe('native panics', () => {
  it('a Rust panic becomes a JS exception, and the JS layer maps it to HappenError INTERNAL', async () => {
    const { createRequire } = await import('node:module')
    const require = createRequire(import.meta.url)
    const native = require('../lib/native')
    const { fromNative } = require('../lib/errors')
    let caught
    try {
      native.panicForTest()
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(Error)
    expect(caught.message).toContain('deliberate panic')
    const mapped = fromNative(caught)
    expect(mapped).toBeInstanceOf(HappenError)
    expect(mapped.code).toBe('INTERNAL')
    expect(mapped.message).toContain('deliberate panic')
    expect(mapped.cause).toBe(caught)
    // A failed argument conversion inside the addon is INTERNAL too, not a raw napi error.
    let conversion
    try {
      native.internType(0, 5)
    } catch (error) {
      conversion = fromNative(error)
    }
    expect(conversion.code).toBe('INTERNAL')
    // And the process, and every runtime, goes on working.
    await expect(nodes.send(job).return()).resolves.toMatchObject({ b: 'b did 1' })
  })

  it('every N-API entry point catches panics, and the release profile unwinds', async () => {
    const { readFileSync } = await import('node:fs')
    const root = new URL('..', import.meta.url)
    // Every file that declares N-API functions: the binding, the NATS transport, the thread places.
    const { execFileSync } = await import('node:child_process')
    const files = execFileSync('grep', ['-rl', '#\\[napi', 'src'], { cwd: root, encoding: 'utf8' })
      .trim()
      .split('\n')
      .sort()
    expect(files).toEqual(['src/binding.rs', 'src/nats.rs', 'src/threads.rs'])
    let functions = 0
    for (const file of files) {
      const source = readFileSync(new URL(file, root), 'utf8')
      const attributes = source.match(/#\[napi[^\]]*\]\s*pub (async )?fn \w+/g) || []
      const objects = (source.match(/#\[napi\(object\)\]/g) || []).length
      // Every #[napi] item is a function, except plain-object types (no code to panic).
      expect(attributes.length + objects).toBe((source.match(/#\[napi/g) || []).length)
      const unguarded = attributes
        .filter((a) => !/#\[napi\(catch_unwind\)\]/.test(a))
        .map((a) => `${file}: ${a.split(/\s+/).pop()}`)
      expect(unguarded).toEqual([])
      functions += attributes.length
    }
    expect(functions).toBeGreaterThanOrEqual(20)
    const cargo = readFileSync(new URL('Cargo.toml', root), 'utf8')
    expect(cargo).toMatch(/\[profile\.release\][^[]*panic = "unwind"/)
  })

  it('a panic while the core table is borrowed leaves it usable (no poisoned state)', async () => {
    const { createRequire } = await import('node:module')
    const native = createRequire(import.meta.url)('../lib/native')
    for (let i = 0; i < 3; i++) expect(() => native.panicForTest()).toThrow(/deliberate panic/)
    const core = native.createCore(10)
    expect(native.createNode(core, 'x')).toBe(0)
    native.dropCore(core)
  })
})

describe('quiet native panics', () => {
  it('the deliberate panic prints nothing on stderr, and its message and place reach the INTERNAL error', async () => {
    const { spawnSync } = await import('node:child_process')
    const { fileURLToPath } = await import('node:url')
    const root = fileURLToPath(new URL('..', import.meta.url))
    const script = `
      const native = require('./lib/native')
      const { fromNative } = require('./lib/errors')
      try { native.panicForTest() } catch (error) {
        const mapped = fromNative(error)
        console.log(JSON.stringify({ code: mapped.code, message: mapped.message }))
      }`
    const child = spawnSync(process.execPath, ['-e', script], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, RUST_BACKTRACE: '1' },
    })
    expect(child.status).toBe(0)
    expect(child.stderr).toBe('')
    const { code, message } = JSON.parse(child.stdout)
    expect(code).toBe('INTERNAL')
    expect(message).toContain('deliberate panic for the test suite')
    expect(message).toMatch(/\(at src[\\/]binding\.rs:\d+:\d+\)/)
  })
})
