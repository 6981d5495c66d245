// Issue 3, part 1: every public entry point refuses bad input with an error that names the
// argument and says what was expected (Node's ERR_INVALID_ARG_TYPE style), and a refused call
// delivers nothing anywhere. send / on / createNode / createNodeArray throw synchronously;
// process and return() reject.
import vm from 'node:vm'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { HappenError, initializeHappen } from 'happen'

const tick = () => new Promise((resolve) => setImmediate(resolve))

/** Every distinct bad input exercised below, counted once each (reported by the last test). */
const exercised = new Set()

/** The error a synchronous call throws; fails when it returns instead. */
function thrownBy(fn) {
  let result
  try {
    result = fn()
  } catch (error) {
    return error
  }
  if (result && typeof result.then === 'function') result.catch(() => {})
  throw new Error(
    `expected a synchronous throw, got ${result && typeof result.then === 'function' ? 'a promise' : typeof result}`,
  )
}

/** The reason a call rejects with; fails when it throws synchronously or resolves. */
async function rejectionOf(fn) {
  let promise
  try {
    promise = fn()
  } catch (error) {
    throw new Error(`expected a rejected promise, got a synchronous throw: ${error?.message}`)
  }
  expect(promise).toBeInstanceOf(Promise)
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the promise to reject')
}

/**
 * The error names the argument (`"name"` in quotes, as Node does) and is of the expected kind:
 * TypeError / RangeError (with Node's code), or a HappenError with `code`.
 */
function expectNamed(error, kind, name) {
  if (kind === TypeError || kind === RangeError) {
    expect(error).toBeInstanceOf(kind)
    expect(error).not.toBeInstanceOf(HappenError)
    expect(error.message).toContain(`"${name}"`)
    expect(error.message).toMatch(/must (be|stand)|out of range|has |nests |expands |is not /)
  } else {
    expect(error).toBeInstanceOf(HappenError)
    expect(error.name).toBe('HappenError')
    expect(error.code).toBe(kind)
    if (name) expect(error.message).toContain(name)
  }
}

let happen
let a
let b
let c
let delivered

beforeEach(() => {
  happen = initializeHappen()
  a = happen.createNode('a')
  b = happen.createNode('b')
  c = happen.createNode('c')
  delivered = []
  for (const node of [a, b, c]) node.on('*', (event, context) => void delivered.push(`${context.node.id}`))
})

afterEach(async () => {
  // Nothing is delivered anywhere when a call is refused.
  await tick()
  await tick()
  expect(delivered).toEqual([])
})

function otherRuntimeNode() {
  return initializeHappen().createNode('elsewhere')
}

function disposedNode() {
  const node = happen.createNode('gone')
  node.dispose()
  return node
}

const validEvent = { type: 'ok' }

describe('initializeHappen(config)', () => {
  const cases = [
    ['a string', 'fast', TypeError, 'config'],
    ['an array', [], TypeError, 'config'],
    ['a number', 3, TypeError, 'config'],
    ['a class instance', new (class Config {})(), TypeError, 'config'],
    ['an unknown key', { histroySize: 10 }, TypeError, 'config.histroySize'],
    ['historySize as a string', { historySize: '10' }, TypeError, 'config.historySize'],
    ['historySize NaN', { historySize: NaN }, RangeError, 'config.historySize'],
    ['historySize negative', { historySize: -5 }, RangeError, 'config.historySize'],
    ['historySize zero', { historySize: 0 }, RangeError, 'config.historySize'],
    ['historySize fractional', { historySize: 2.5 }, RangeError, 'config.historySize'],
    ['historySize Infinity', { historySize: Infinity }, RangeError, 'config.historySize'],
    ['historySize huge', { historySize: 2 ** 40 }, RangeError, 'config.historySize'],
    ['historySize a bigint', { historySize: 10n }, TypeError, 'config.historySize'],
    ['transport a string', { transport: 'memory' }, TypeError, 'config.transport'],
    ['transport of unknown type', { transport: { type: 'pigeon' } }, TypeError, 'config.transport.type'],
    ['transport without type', { transport: {} }, TypeError, 'config.transport.type'],
    [
      'nats servers a string',
      { transport: { type: 'nats', servers: 'nats://h:4222' } },
      TypeError,
      'config.transport.servers',
    ],
    ['nats servers empty', { transport: { type: 'nats', servers: [] } }, TypeError, 'config.transport.servers'],
    [
      'nats servers not URLs',
      { transport: { type: 'nats', servers: ['localhost'] } },
      TypeError,
      'config.transport.servers',
    ],
    [
      'nats servers mixed',
      { transport: { type: 'nats', servers: ['nats://h:1', 5] } },
      TypeError,
      'config.transport.servers',
    ],
  ]
  it.each(cases)('refuses %s', (label, config, kind, name) => {
    exercised.add(`initializeHappen: ${label}`)
    expectNamed(
      thrownBy(() => initializeHappen(config)),
      kind,
      name,
    )
  })
})

describe('createNode(id, options)', () => {
  const cases = [
    ['no id', () => [undefined], TypeError, 'id'],
    ['an empty id', () => [''], TypeError, 'id'],
    ['a numeric id', () => [42], TypeError, 'id'],
    ['a null id', () => [null], TypeError, 'id'],
    ['an object id', () => [{ id: 'x' }], TypeError, 'id'],
    ['a symbol id', () => [Symbol('x')], TypeError, 'id'],
    ['a boxed string id', () => [new String('x')], TypeError, 'id'],
    ['options a string', () => ['x', 'fast'], TypeError, 'options'],
    ['options an array', () => ['x', []], TypeError, 'options'],
    ['options null', () => ['x', null], TypeError, 'options'],
    ['options a function', () => ['x', () => {}], TypeError, 'options'],
    ['options a Map', () => ['x', new Map()], TypeError, 'options'],
  ]
  it.each(cases)('refuses %s', (label, args, kind, name) => {
    exercised.add(`createNode: ${label}`)
    expectNamed(
      thrownBy(() => happen.createNode(...args())),
      kind,
      name,
    )
    expect(() => happen.node('x')).toThrow(HappenError) // nothing half-created
  })

  it('refuses a duplicate id with DUPLICATE_NODE, and the first node keeps working', async () => {
    exercised.add('createNode: duplicate id')
    expectNamed(
      thrownBy(() => happen.createNode('a')),
      'DUPLICATE_NODE',
      "'a'",
    )
    expect(happen.node('a')).toBe(a)
  })

  it('runtime.node(id) refuses an unknown id with UNKNOWN_NODE and a bad id with a TypeError', () => {
    exercised.add('node: unknown id')
    exercised.add('node: numeric id')
    expectNamed(
      thrownBy(() => happen.node('nobody')),
      'UNKNOWN_NODE',
      "'nobody'",
    )
    expectNamed(
      thrownBy(() => happen.node(7)),
      TypeError,
      'id',
    )
  })
})

describe('createNodeArray(nodes)', () => {
  const cases = [
    ['nothing', () => undefined, TypeError, 'nodes'],
    ['an empty array', () => [], TypeError, 'nodes'],
    ['a single node, not in an array', () => a, TypeError, 'nodes'],
    ['a Set of nodes', () => new Set([a, b]), TypeError, 'nodes'],
    ['a string', () => 'a', TypeError, 'nodes'],
    ['the same node twice', () => [a, b, a], TypeError, 'nodes[2]'],
    ['a mixed array (node and id)', () => [a, 'b'], TypeError, 'nodes[1]'],
    ['a node look-alike', () => [a, { id: 'b', send() {} }], TypeError, 'nodes[1]'],
    ['a sparse array', () => [a, , b], TypeError, 'nodes[1]'], // eslint-disable-line no-sparse-arrays
    ['nodes of two runtimes', () => [a, otherRuntimeNode()], TypeError, 'nodes[1]'],
  ]
  it.each(cases)('refuses %s', (label, nodes, kind, name) => {
    exercised.add(`createNodeArray: ${label}`)
    expectNamed(
      thrownBy(() => happen.createNodeArray(nodes())),
      kind,
      name,
    )
  })

  it('refuses a disposed node with DISPOSED', () => {
    exercised.add('createNodeArray: disposed node')
    expectNamed(
      thrownBy(() => happen.createNodeArray([a, disposedNode()])),
      'DISPOSED',
      "'gone'",
    )
  })
})

describe('on(pattern, handler)', () => {
  const fn = () => 1
  const cases = [
    ['no pattern', () => [undefined, fn], TypeError, 'pattern'],
    ['an empty pattern', () => ['', fn], TypeError, 'pattern'],
    ['a numeric pattern', () => [5, fn], TypeError, 'pattern'],
    ['a RegExp pattern', () => [/order\..*/, fn], TypeError, 'pattern'],
    ['an array of patterns', () => [['a', 'b'], fn], TypeError, 'pattern'],
    ['unbalanced braces', () => ['{order,payment.created', fn], TypeError, 'pattern'],
    ['a stray closing brace', () => ['order}.created', fn], TypeError, 'pattern'],
    ['nested braces', () => ['{a,{b,c}}', fn], TypeError, 'pattern'],
    ['an empty alternative', () => ['{order,}.created', fn], TypeError, 'pattern'],
    ['an empty segment', () => ['order..created', fn], TypeError, 'pattern'],
    ['a leading dot', () => ['.created', fn], TypeError, 'pattern'],
    ['a partial wildcard', () => ['ord*.created', fn], TypeError, 'pattern'],
    ['an exponential brace expansion', () => ['{a,b}'.repeat(30), fn], TypeError, 'pattern'],
    ['no handler', () => ['x', undefined], TypeError, 'handler'],
    ['a string handler', () => ['x', 'handle'], TypeError, 'handler'],
    ['an object handler', () => ['x', { handle() {} }], TypeError, 'handler'],
    ['a null handler', () => ['x', null], TypeError, 'handler'],
  ]
  it.each(cases)('node.on refuses %s', (label, args, kind, name) => {
    exercised.add(`on: ${label}`)
    expectNamed(
      thrownBy(() => a.on(...args())),
      kind,
      name,
    )
  })

  it.each(cases.slice(0, 3).concat(cases.slice(-2)))(
    'nodes.on refuses %s and registers on no node',
    async (label, args, kind, name) => {
      const nodes = happen.createNodeArray([a, b])
      expectNamed(
        thrownBy(() => nodes.on(...args())),
        kind,
        name,
      )
    },
  )

  it('a refused pattern registers nothing: a later valid send reaches only the valid handlers', async () => {
    const seen = []
    thrownBy(() => a.on('{x,y', () => seen.push('bad')))
    a.on('x', () => seen.push('good'))
    await a.process({ type: 'x' })
    expect(seen).toEqual(['good'])
    delivered.length = 0
  })

  it('an exponential brace expansion is refused quickly instead of hanging', () => {
    const started = Date.now()
    const error = thrownBy(() => a.on(`${'{a,b}.'.repeat(40)}x`, () => 1))
    expect(error.message).toMatch(/more than 1024 alternatives/)
    expect(Date.now() - started).toBeLessThan(1000)
  })
})

describe('send(event) and send(target, event)', () => {
  class Event {
    constructor() {
      this.type = 'ok'
    }
  }
  const badEvents = [
    ['no event', undefined, 'event'],
    ['null', null, 'event'],
    ['a string', 'ok', 'event'],
    ['a number', 7, 'event'],
    ['a function', Object.assign(() => {}, { type: 'ok' }), 'event'],
    ['a class instance', new Event(), 'event'],
    ['a Map', new Map([['type', 'ok']]), 'event'],
    ['a Date', new Date(), 'event'],
    ['an inherited type', Object.create({ type: 'ok' }), 'event'],
    ['a boxed String', new String('ok'), 'event'],
    ['no type', {}, 'event.type'],
    ['an empty type', { type: '' }, 'event.type'],
    ['a numeric type', { type: 1 }, 'event.type'],
    ['a null type', { type: null }, 'event.type'],
    ['a boxed String type', { type: new String('ok') }, 'event.type'],
    ['a numeric causationId', { type: 'ok', causationId: 5 }, 'event.causationId'],
    ['an empty causationId', { type: 'ok', causationId: '' }, 'event.causationId'],
    ['an object correlationId', { type: 'ok', correlationId: {} }, 'event.correlationId'],
  ]
  const badBatches = [
    ['a batch with null', [validEvent, null], 'events[1]'],
    ['a batch with a string', [validEvent, 'ok'], 'events[1]'],
    ['a batch with an empty type', [validEvent, validEvent, { type: '' }], 'events[2].type'],
    ['a batch with a class instance', [new Event()], 'events[0]'],
    ['a batch holding a node', [validEvent, 'placeholder'], 'events[1]'],
    ['a sparse batch', [validEvent, , validEvent], 'events[1]'], // eslint-disable-line no-sparse-arrays
    ['a nested batch', [validEvent, [validEvent]], 'events[1]'],
    ['a batch with a bad correlationId', [validEvent, { type: 'ok', correlationId: 3 }], 'events[1].correlationId'],
    // The batch loop trusts a type equal to the first one and a prototype equal to the last one
    // seen: each of these must still be refused, at its own index.
    ['a batch with null first', [null, validEvent], 'events[0]'],
    ['a batch of a class instance after a plain one', [validEvent, validEvent, new Event()], 'events[2]'],
    [
      'a batch of a class instance after a null-prototype one',
      [validEvent, Object.assign(Object.create(null), { type: 'ok' }), new Event()],
      'events[2]',
    ],
    ['a batch with an inherited type after a plain one', [validEvent, Object.create({ type: 'ok' })], 'events[1]'],
    [
      'a batch with an array of plain prototype',
      [validEvent, Object.setPrototypeOf(Object.assign([], { type: 'ok' }), Object.prototype)],
      'events[1]',
    ],
    [
      'a batch with an array of null prototype',
      [validEvent, Object.setPrototypeOf(Object.assign([], { type: 'ok' }), null)],
      'events[1]',
    ],
    ['a batch with a bad type after another type', [validEvent, { type: 'other' }, { type: 7 }], 'events[2].type'],
  ]

  it.each(badEvents)('node.send refuses %s synchronously', (label, event, name) => {
    exercised.add(`send event: ${label}`)
    expectNamed(
      thrownBy(() => a.send(event)),
      TypeError,
      name,
    )
    expectNamed(
      thrownBy(() => a.send(b, event)),
      TypeError,
      name,
    )
    expectNamed(
      thrownBy(() => happen.createNodeArray([a, b]).send(event)),
      TypeError,
      name,
    )
    expectNamed(
      thrownBy(() => a.broadcast(event)),
      TypeError,
      name,
    )
  })

  it.each(badBatches)('node.send refuses %s synchronously', (label, batch, name) => {
    exercised.add(`send batch: ${label}`)
    const events = batch.map((e) => (e === 'placeholder' ? b : e))
    expectNamed(
      thrownBy(() => a.send(events)),
      TypeError,
      name,
    )
    expectNamed(
      thrownBy(() => a.send([b, c], events)),
      TypeError,
      name,
    )
    expectNamed(
      thrownBy(() => happen.createNodeArray([a, b]).send(events)),
      TypeError,
      name,
    )
  })

  it.each(badEvents.concat(badBatches))('node.process rejects %s (never throws)', async (label, input, name) => {
    const events = Array.isArray(input) ? input.map((e) => (e === 'placeholder' ? b : e)) : input
    expectNamed(await rejectionOf(() => a.process(events)), TypeError, name)
    expectNamed(await rejectionOf(() => happen.createNodeArray([a, b]).process(events)), TypeError, name)
  })

  it('a batch mixing plain prototypes (null, this realm, another realm) and events with a length is accepted', async () => {
    const otherRealm = vm.runInNewContext("({ type: 'ok', payload: 'other realm' })")
    const events = [
      { type: 'ok', payload: 'plain' },
      Object.assign(Object.create(null), { type: 'ok', payload: 'null prototype' }),
      otherRealm,
      { type: 'ok', payload: 'plain again', length: 3 },
      Object.assign(Object.create(null), { type: 'other', payload: 'null prototype, other type' }),
    ]
    const d = happen.createNode('accepts-batches')
    d.on('*', (batch) => batch.map((event) => event.payload))
    expect(await d.send(events).return()).toEqual([
      'plain',
      'null prototype',
      'other realm',
      'plain again',
      'null prototype, other type',
    ])
  })

  it('broadcast refuses a batch', () => {
    exercised.add('broadcast: a batch')
    expectNamed(
      thrownBy(() => a.broadcast([validEvent])),
      TypeError,
      'event',
    )
  })

  const badTargets = [
    ['undefined', () => undefined, TypeError, 'target'],
    ['null', () => null, TypeError, 'target'],
    ['an empty id', () => '', TypeError, 'target'],
    ['a number', () => 1, TypeError, 'target'],
    ['a node look-alike', () => ({ id: 'b' }), TypeError, 'target'],
    ['an empty array', () => [], TypeError, 'target'],
    ['a duplicate in an array', () => [b, c, b], TypeError, 'target[2]'],
    ['a mixed array (node and id)', () => [b, 'c'], TypeError, 'target[1]'],
    ['a sparse array', () => [b, , c], TypeError, 'target[1]'], // eslint-disable-line no-sparse-arrays
    ['a node of another runtime', () => otherRuntimeNode(), TypeError, 'target'],
    ['an array with a node of another runtime', () => [b, otherRuntimeNode()], TypeError, 'target[1]'],
    ['an unknown node id', () => 'nobody', 'UNKNOWN_NODE', "'nobody'"],
    ['a disposed node', () => disposedNode(), 'DISPOSED', "'gone'"],
    ['a disposed node in an array', () => [b, disposedNode()], 'DISPOSED', "'gone'"],
  ]
  it.each(badTargets)('send(target, event) refuses %s as target synchronously', (label, target, kind, name) => {
    exercised.add(`send target: ${label}`)
    expectNamed(
      thrownBy(() => a.send(target(), validEvent)),
      kind,
      name,
    )
  })

  it('a NodeArray that holds a node disposed since refuses to send, delivering to no one', async () => {
    exercised.add('send target: NodeArray with a member disposed later')
    const d = happen.createNode('d')
    d.on('*', () => delivered.push('d'))
    const nodes = happen.createNodeArray([a, b, d])
    d.dispose()
    expectNamed(
      thrownBy(() => nodes.send(validEvent)),
      'DISPOSED',
      "'d'",
    )
    expectNamed(await rejectionOf(() => nodes.process(validEvent)), 'DISPOSED', "'d'")
    // A node created after the dispose reuses the freed core slot; it must not receive either.
    const e = happen.createNode('e')
    e.on('*', () => delivered.push('e'))
    expectNamed(
      thrownBy(() => nodes.send(validEvent)),
      'DISPOSED',
      "'d'",
    )
  })

  it('a disposed node can neither send, process, broadcast nor register', async () => {
    exercised.add('disposed node: send/process/broadcast/on')
    const gone = disposedNode()
    expectNamed(
      thrownBy(() => gone.send(validEvent)),
      'DISPOSED',
      "'gone'",
    )
    expectNamed(
      thrownBy(() => gone.send(a, validEvent)),
      'DISPOSED',
      "'gone'",
    )
    expectNamed(
      thrownBy(() => gone.broadcast(validEvent)),
      'DISPOSED',
      "'gone'",
    )
    expectNamed(
      thrownBy(() => gone.on('x', () => 1)),
      'DISPOSED',
      "'gone'",
    )
    expectNamed(await rejectionOf(() => gone.process(validEvent)), 'DISPOSED', "'gone'")
  })
})

describe('return(options) rejects every bad option with a TypeError (SPEC §6)', () => {
  const cases = [
    ['a string', 'settled'],
    ['a number', 100],
    ['null', null],
    ['an array', [{ settled: true }]],
    ['a function', () => ({ settled: true })],
    [
      'a class instance',
      new (class Options {
        settled = true
      })(),
    ],
    ['an unknown key', { setled: true }],
    ['an unknown key beside known ones', { settled: true, retries: 3 }],
    ['settled a string', { settled: 'yes' }],
    ['settled a number', { settled: 1 }],
    ['timeout a string', { timeout: '100' }],
    ['timeout NaN', { timeout: NaN }],
    ['timeout negative', { timeout: -1 }],
    ['timeout zero', { timeout: 0 }],
    ['timeout Infinity', { timeout: Infinity }],
    ['timeout a bigint', { timeout: 100n }],
  ]
  it.each(cases)('refuses %s', async (label, options) => {
    exercised.add(`return: ${label}`)
    const key =
      options !== null && typeof options === 'object' && !Array.isArray(options)
        ? Object.keys(options).find((k) => k !== 'settled' || typeof options.settled !== 'boolean')
        : undefined
    const name = key ? `options.${key}` : 'options'
    const result = await a.send(validEvent)
    expectNamed(await rejectionOf(() => result.return(options)), TypeError, name)
    expectNamed(await rejectionOf(() => a.send(validEvent).return(options)), TypeError, name)
    // The refused return() does not disturb a later valid one.
    await expect(result.return()).resolves.toBeUndefined()
    delivered.length = 0 // these sends were valid
  })
})

describe('trace(id)', () => {
  it.each([
    ['undefined', undefined],
    ['a number', 5],
    ['an empty string', ''],
    ['an object', { id: 'x' }],
    ['null', null],
  ])('refuses %s', (label, id) => {
    exercised.add(`trace: ${label}`)
    expectNamed(
      thrownBy(() => happen.trace(id)),
      TypeError,
      'id',
    )
  })

  it('returns null for an id it does not hold', () => {
    expect(happen.trace('no-such-id')).toBeNull()
  })
})

describe('after shutdown()', () => {
  it('every call fails with SHUTDOWN, synchronously for send/on/createNode/createNodeArray, by rejection for process', async () => {
    const nodes = happen.createNodeArray([a, b])
    await happen.shutdown()
    const calls = [
      ['createNode', () => happen.createNode('late')],
      ['createNodeArray', () => happen.createNodeArray([a])],
      ['node', () => happen.node('a')],
      ['on', () => a.on('x', () => 1)],
      ['nodes.on', () => nodes.on('x', () => 1)],
      ['send', () => a.send(validEvent)],
      ['send to target', () => a.send(b, validEvent)],
      ['send to id', () => a.send('b', validEvent)],
      ['nodes.send', () => nodes.send(validEvent)],
      ['broadcast', () => a.broadcast(validEvent)],
    ]
    for (const [label, call] of calls) {
      exercised.add(`after shutdown: ${label}`)
      const error = thrownBy(call)
      expectNamed(error, 'SHUTDOWN')
      expect(error.message).toMatch(/shut down/)
    }
    for (const [label, call] of [
      ['process', () => a.process(validEvent)],
      ['nodes.process', () => nodes.process(validEvent)],
    ]) {
      exercised.add(`after shutdown: ${label}`)
      expectNamed(await rejectionOf(call), 'SHUTDOWN')
    }
    // A second shutdown is harmless; trace still reads the history.
    await happen.shutdown()
    expect(happen.trace('no-such-id')).toBeNull()
  })

  it('bad input after shutdown still reports SHUTDOWN first (the runtime state wins)', () => {
    return happen.shutdown().then(() => {
      expectNamed(
        thrownBy(() => a.send(undefined)),
        'SHUTDOWN',
      )
      expectNamed(
        thrownBy(() => happen.createNode('')),
        'SHUTDOWN',
      )
    })
  })
})

describe('count', () => {
  it('exercised at least 100 distinct bad inputs, each refused with a named error', () => {
    expect(exercised.size).toBeGreaterThanOrEqual(100)
    console.log(`bad-input.test: ${exercised.size} distinct bad inputs, each refused with a named error`)
  })
})
