// Issue 3, part 5: property tests. fast-check generates nodes, handlers (patterns and
// behaviours: a value, a throw, a thrown non-Error, a rejection, a next function, a Promise of
// one, a delay), events, batches and targets; every run is compared with a plain-JS model of
// SPEC.md: the results, the failures, the allSettled entries and the outcomes in the history.
// Every target must be accounted for exactly once, and nothing may crash.
//
// A second property calls every entry point with arbitrary values: each call succeeds or is
// refused with a named error (TypeError/RangeError with an ERR_ code, or a HappenError).
//
// `npm test` runs HAPPEN_FUZZ_RUNS (default 3,000) scenarios of 1-3 sends each and 2,000
// arbitrary calls; `npm run fuzz` runs 100,000 scenarios and 50,000 calls.
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HappenError, initializeHappen } from 'happen'

const RUNS = Number(process.env.HAPPEN_FUZZ_RUNS) || 3000
const SEED = process.env.HAPPEN_FUZZ_SEED ? Number(process.env.HAPPEN_FUZZ_SEED) : undefined

// ---------------------------------------------------------------------------------------------
// The model of SPEC.md.

/** SPEC §4: exact type, `*` = one dot-separated segment, `*` alone = everything, `{a,b}` alternatives. */
function modelMatches(pattern, type) {
  if (pattern === '*') return true
  const expand = (p) => {
    const open = p.indexOf('{')
    if (open < 0) return [p]
    const close = p.indexOf('}', open)
    const rest = expand(p.slice(close + 1))
    return p
      .slice(open + 1, close)
      .split(',')
      .flatMap((option) => rest.map((tail) => p.slice(0, open) + option + tail))
  }
  const parts = type.split('.')
  return expand(pattern).some((alt) => {
    const segs = alt.split('.')
    return segs.length === parts.length && segs.every((s, i) => (s === '*' ? parts[i] !== '' : s === parts[i]))
  })
}

/** What a behaviour makes of a flow: { ok: true, value } or { ok: false, reason }. */
function modelFlow(behaviour) {
  switch (behaviour.kind) {
    case 'value':
      return { ok: true, value: behaviour.value }
    case 'throw':
    case 'reject':
      return { ok: false, reason: behaviour.reason }
    default:
      return modelFlow(behaviour.then) // next, promiseNext, delay
  }
}

/** SPEC §4-§6: one target's outcome for a send of `types` (one type, or a batch's types). */
function modelTarget(handlers, types) {
  if (types.length === 0) return { status: 'fulfilled', value: null, unmatched: true }
  const failures = []
  const runs = []
  for (const h of handlers) {
    if (h.pattern.kind === 'string') {
      if (types.every((t) => modelMatches(h.pattern.source, t))) runs.push(h)
    } else if (h.pattern.kind === 'throws') {
      failures.push(h.pattern.reason)
    } else if (types.every((t) => h.pattern.accepts.includes(t))) {
      runs.push(h)
    }
  }
  const flows = runs.map((h) => modelFlow(h.behaviour))
  for (const f of flows) if (!f.ok) failures.push(f.reason)
  if (failures.length > 0) return { status: 'rejected', reasons: failures }
  if (runs.length === 0) return { status: 'fulfilled', value: null, unmatched: true }
  return { status: 'fulfilled', value: flows[0].value }
}

// ---------------------------------------------------------------------------------------------
// Generators.

const segment = fc.constantFrom('a', 'b', 'c')
const eventType = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('.'))
const patternPiece = fc.oneof(
  { weight: 3, arbitrary: segment },
  { weight: 2, arbitrary: fc.constant('*') },
  {
    weight: 2,
    arbitrary: fc
      .uniqueArray(fc.oneof(segment, fc.constant('*'), fc.constant('a.b')), { minLength: 1, maxLength: 3 })
      .map((o) => `{${o.join(',')}}`),
  },
)
const stringPattern = fc.oneof(
  { weight: 1, arbitrary: fc.constant('*') },
  { weight: 8, arbitrary: fc.array(patternPiece, { minLength: 1, maxLength: 3 }).map((p) => p.join('.')) },
)
const pattern = fc.oneof(
  { weight: 8, arbitrary: stringPattern.map((source) => ({ kind: 'string', source })) },
  {
    weight: 2,
    arbitrary: fc.uniqueArray(eventType, { maxLength: 4 }).map((accepts) => ({ kind: 'predicate', accepts })),
  },
  { weight: 1, arbitrary: fc.constant(null).map(() => ({ kind: 'throws', reason: new Error('predicate failed') })) },
)

const value = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 4 }),
  fc.constant(undefined),
  fc.constant(null),
  fc.boolean(),
  fc.record({ n: fc.integer() }),
)
const thrown = fc.oneof(
  fc.string({ maxLength: 3 }).map((m) => new Error(`boom ${m}`)),
  fc.constantFrom('a string', undefined, null, 0, Symbol.for('thrown')),
  fc.record({ code: fc.integer() }),
)
const delay = fc.constantFrom('microtask', 'immediate', 'timer')

const behaviour = fc.letrec((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 6, arbitrary: value.map((v) => ({ kind: 'value', value: v })) },
    { weight: 1, arbitrary: thrown.map((reason) => ({ kind: 'throw', reason })) },
    { weight: 1, arbitrary: thrown.map((reason) => ({ kind: 'reject', reason })) },
    { weight: 2, arbitrary: tie('node').map((then) => ({ kind: 'next', then })) },
    { weight: 1, arbitrary: tie('node').map((then) => ({ kind: 'promiseNext', then })) },
    { weight: 2, arbitrary: fc.tuple(delay, tie('node')).map(([wait, then]) => ({ kind: 'delay', wait, then })) },
  ),
})).node

const handlerSpec = fc.record({ pattern, behaviour })
const input = fc.oneof(
  { weight: 3, arbitrary: eventType.map((type) => ({ batch: false, types: [type] })) },
  {
    weight: 2,
    arbitrary: fc.array(eventType, { minLength: 0, maxLength: 4 }).map((types) => ({ batch: true, types })),
  },
)
const how = fc.constantFrom(
  'self',
  'node',
  'id',
  'array',
  'nodeArray',
  'broadcast',
  'process',
  'nodesProcess',
  'returnOnPromise',
)
const sendSpec = fc.record({ how, input, from: fc.nat(), pick: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }) })

const scenario = fc.record({
  nodes: fc.array(fc.array(handlerSpec, { maxLength: 3 }), { minLength: 1, maxLength: 4 }),
  sends: fc.array(sendSpec, { minLength: 1, maxLength: 3 }),
})

// ---------------------------------------------------------------------------------------------
// Running a scenario.

const wait = (kind) =>
  kind === 'microtask'
    ? Promise.resolve()
    : new Promise((resolve) => (kind === 'immediate' ? setImmediate(resolve) : setTimeout(resolve, 0)))

/** Turns a behaviour into handler/step code. `async` is how the value must be given back. */
function perform(b) {
  switch (b.kind) {
    case 'value':
      return b.value
    case 'throw':
      throw b.reason
    case 'reject':
      return Promise.reject(b.reason)
    case 'next':
      return function next() {
        return perform(b.then)
      }
    case 'promiseNext':
      return Promise.resolve(function promisedNext() {
        return perform(b.then)
      })
    case 'delay':
      return wait(b.wait).then(() => perform(b.then))
  }
  throw new Error(`unknown behaviour ${b.kind}`)
}

function makeHandler(spec) {
  const fn = () => perform(spec.behaviour)
  if (spec.pattern.kind === 'string') return [spec.pattern.source, fn]
  if (spec.pattern.kind === 'throws') {
    return [
      () => {
        throw spec.pattern.reason
      },
      fn,
    ]
  }
  return [(type) => spec.pattern.accepts.includes(type), fn]
}

/** Which nodes a send reaches, whether results come keyed, and the call that makes it. */
function plan(send, nodes, happen) {
  const from = nodes[send.from % nodes.length]
  const chosen = nodes.filter((_, i) => send.pick[i])
  const subset = chosen.length > 0 ? chosen : [from]
  const other = nodes[(send.from + 1) % nodes.length]
  const events = send.input.batch ? send.input.types.map((type) => ({ type })) : { type: send.input.types[0] }
  switch (send.how) {
    case 'self':
      return { targets: [from], keyed: false, call: () => from.send(events) }
    case 'node':
      return { targets: [other], keyed: false, call: () => from.send(other, events) }
    case 'id':
      return { targets: [other], keyed: false, call: () => from.send(other.id, events) }
    case 'array':
      return { targets: subset, keyed: true, call: () => from.send(subset, events) }
    case 'nodeArray':
      return { targets: subset, keyed: true, call: () => happen.createNodeArray(subset).send(events) }
    case 'broadcast':
      if (send.input.batch) return plan({ ...send, how: 'array' }, nodes, happen)
      return { targets: nodes, keyed: true, call: () => from.broadcast(events) }
    case 'process':
      return { targets: [from], keyed: false, direct: true, call: () => from.process(events) }
    case 'nodesProcess':
      return { targets: subset, keyed: true, direct: true, call: () => happen.createNodeArray(subset).process(events) }
    case 'returnOnPromise':
      return {
        targets: subset,
        keyed: true,
        direct: true,
        call: () => happen.createNodeArray(subset).send(events).return(),
      }
  }
  throw new Error(`unknown send ${send.how}`)
}

const counters = { scenarios: 0, sends: 0, targets: 0, failures: 0, unmatched: 0 }

async function check(sc) {
  counters.scenarios++
  const happen = initializeHappen()
  const nodes = sc.nodes.map((_, i) => happen.createNode(`n${i}`))
  sc.nodes.forEach((handlers, i) => handlers.forEach((h) => nodes[i].on(...makeHandler(h))))

  for (const send of sc.sends) {
    counters.sends++
    const { targets, keyed, direct, call } = plan(send, nodes, happen)
    const types = send.input.types
    const expected = new Map(targets.map((node) => [node.id, modelTarget(sc.nodes[Number(node.id.slice(1))], types)]))
    counters.targets += targets.length
    const anyFailed = [...expected.values()].some((e) => e.status === 'rejected')
    for (const e of expected.values()) {
      if (e.status === 'rejected') counters.failures++
      if (e.unmatched) counters.unmatched++
    }
    const plainResults = Object.fromEntries(
      [...expected].filter(([, e]) => e.status === 'fulfilled').map(([id, e]) => [id, e.value]),
    )

    if (direct) {
      // process() / return() directly: the plain result, or HANDLER_FAILED.
      let outcome
      try {
        outcome = { ok: true, value: await call() }
      } catch (error) {
        outcome = { ok: false, error }
      }
      if (anyFailed) {
        expect(outcome.ok).toBe(false)
        expectHandlerFailed(outcome.error, expected, plainResults)
      } else {
        expect(outcome.ok, outcome.error?.stack).toBe(true)
        expect(outcome.value).toStrictEqual(keyed ? plainResults : plainResults[targets[0].id])
      }
      continue
    }

    const result = await call()
    expect(result.ids).toHaveLength(types.length === 0 ? 0 : send.input.batch ? types.length : 1)
    const settled = await result.return({ settled: true })
    // Every target accounted for exactly once.
    expect(Object.keys(settled).sort()).toEqual(targets.map((n) => n.id).sort())
    for (const [id, e] of expected) {
      const entry = settled[id]
      if (e.status === 'fulfilled') {
        expect(entry).toStrictEqual({ status: 'fulfilled', value: e.value })
      } else {
        expect(entry.status).toBe('rejected')
        expect(e.reasons).toContain(entry.reason)
      }
    }
    let plain
    try {
      plain = { ok: true, value: await result.return() }
    } catch (error) {
      plain = { ok: false, error }
    }
    if (anyFailed) {
      expect(plain.ok).toBe(false)
      expectHandlerFailed(plain.error, expected, plainResults)
    } else {
      expect(plain.ok, plain.error?.stack).toBe(true)
      expect(plain.value).toStrictEqual(keyed ? plainResults : plainResults[targets[0].id])
    }
    // The history holds one branch per target, with the model's outcome.
    if (types.length > 0) {
      const tree = result.trace()
      expect(tree).not.toBeNull()
      expect(tree.id).toBe(result.id)
      const outcomes = tree.branches.map((b) => [b.node, b.outcome]).sort()
      const modelled = [...expected]
        .map(([id, e]) => [id, e.status === 'rejected' ? 'rejected' : e.unmatched ? 'unmatched' : 'fulfilled'])
        .sort()
      expect(outcomes).toEqual(modelled)
      if (send.input.batch && types.length > 1) expect(tree.batch.size).toBe(types.length)
    }
  }
}

function expectHandlerFailed(error, expected, plainResults) {
  expect(error).toBeInstanceOf(HappenError)
  expect(error.code).toBe('HANDLER_FAILED')
  expect(error.results).toStrictEqual(plainResults)
  const failed = [...expected].filter(([, e]) => e.status === 'rejected')
  expect(Object.keys(error.errors).sort()).toEqual(failed.map(([id]) => id).sort())
  for (const [id, e] of failed) expect(e.reasons).toContain(error.errors[id])
  expect(error.failures.map((f) => f.node).sort()).toEqual(failed.map(([id]) => id).sort())
  for (const f of error.failures) expect(typeof f.step).toBe('string')
}

// ---------------------------------------------------------------------------------------------

const unhandled = []
const onUnhandled = (reason) => unhandled.push(reason)
beforeAll(() => process.on('unhandledRejection', onUnhandled))
afterAll(() => process.off('unhandledRejection', onUnhandled))

describe('property: happen behaves like the model of SPEC.md', () => {
  it(
    `random nodes, handlers, events, batches and targets (${RUNS} scenarios)`,
    async () => {
      await fc.assert(fc.asyncProperty(scenario, check), { numRuns: RUNS, seed: SEED })
      expect(unhandled).toEqual([])
      // The generators reach the interesting cases, not only the easy ones.
      expect(counters.failures).toBeGreaterThan(RUNS / 20)
      expect(counters.unmatched).toBeGreaterThan(RUNS / 20)
      console.log(
        `property.test: ${counters.scenarios} scenarios, ${counters.sends} sends, ${counters.targets} target outcomes checked`,
      )
    },
    Math.max(60_000, RUNS * 10),
  )

  it(
    'arbitrary values at every entry point succeed or are refused with a named error, never a crash',
    async () => {
      const happen = initializeHappen()
      const [a, b] = ['a', 'b'].map((id) => happen.createNode(id))
      a.on('*', (event) => (Array.isArray(event) ? event.length : event.type))
      const eventLike = fc.record(
        {
          type: fc.oneof(fc.anything(), eventType),
          payload: fc.anything(),
          causationId: fc.anything(),
          correlationId: fc.anything(),
        },
        { requiredKeys: [] },
      )
      const arg = fc.oneof(
        fc.anything({
          withBoxedValues: true,
          withMap: true,
          withSet: true,
          withBigInt: true,
          withDate: true,
          withTypedArray: true,
          withSparseArray: true,
          withNullPrototype: true,
        }),
        eventLike,
        fc.array(eventLike, { maxLength: 3 }),
      )
      const calls = [
        (x, y) => happen.createNode(x, y),
        (x) => happen.createNodeArray(x),
        (x) => happen.createNodeArray([a, x]),
        (x, y) => b.on(x, y),
        (x) => b.on('x', x),
        (x) => b.on(x, () => 1),
        (x) => a.send(x),
        (x, y) => a.send(x, y),
        (x) => a.send(b, x),
        (x) => a.process(x),
        (x) => a.broadcast(x),
        (x) => a.send({ type: 'ok' }).return(x),
        (x) => happen.trace(x),
        (x) => happen.node(x),
        (x) => initializeHappen(x),
      ]
      let refused = 0
      let accepted = 0
      await fc.assert(
        fc.asyncProperty(fc.nat(calls.length - 1), arg, arg, async (which, x, y) => {
          let error = null
          try {
            const out = calls[which](x, y)
            if (out && typeof out.then === 'function') await out
            accepted++
          } catch (e) {
            error = e
          }
          if (error === null) return
          refused++
          const named =
            (error instanceof HappenError &&
              ['DUPLICATE_NODE', 'UNKNOWN_NODE', 'DISPOSED', 'HANDLER_FAILED'].includes(error.code)) ||
            ((error instanceof TypeError || error instanceof RangeError) &&
              /^ERR_/.test(error.code) &&
              /^The (value of )?"[^"]+"/.test(error.message))
          expect(named, `call ${which} threw ${error?.stack}`).toBe(true)
        }),
        { numRuns: Math.max(2000, Math.floor(RUNS / 2)), seed: SEED },
      )
      expect(refused).toBeGreaterThan(accepted / 10)
    },
    Math.max(60_000, RUNS * 10),
  )

  it('the model matcher agrees with the documented examples', () => {
    expect(modelMatches('order.*', 'order.created')).toBe(true)
    expect(modelMatches('order.*', 'order.created.v2')).toBe(false)
    expect(modelMatches('{order,payment}.created', 'payment.created')).toBe(true)
    expect(modelMatches('*', 'a.b.c')).toBe(true)
    expect(modelMatches('{a.b,c}.d', 'a.b.d')).toBe(true)
  })
})
