// Issue 21: trust nothing on the wire. Every inbound NATS message is checked against its shape
// before the transport acts on it: the checks accept what real senders write (built here with
// the real encoders, or exactly as requests.js and serving.js write them), refuse everything
// else with a reason naming what is wrong, and never throw, hang or allocate by a count a
// message claims. Refused messages are counted, logged once per sender and reason, and warned
// about at most once a minute. No server needed.
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import v8 from 'node:v8'
import vm from 'node:vm'
import fc from 'fast-check'
import { afterEach, describe, expect, it, vi } from 'vitest'

const require = createRequire(import.meta.url)
const { CAUSAL_FIELDS, encodeCausal, describeError } = require('../lib/transports/nats/wire.js')
const {
  BAD_JSON,
  PAIR_LIMIT,
  REASON_LIMIT,
  RUNTIME_NAME_LIMIT,
  parse,
  checkRequest,
  checkFrame,
  checkFanHeader,
  checkFan,
  checkReplies,
  checkPresence,
  runtimeOfReply,
  branchOfReply,
  Drops,
} = require('../lib/transports/nats/inbound.js')
const { HappenError } = require('../lib/errors.js')

const RUNS = Number(process.env.HAPPEN_FUZZ_RUNS) || 3000
const SEED = process.env.HAPPEN_FUZZ_SEED ? Number(process.env.HAPPEN_FUZZ_SEED) : undefined

// ---------------------------------------------------------------------------------------------
// Real messages, written as the transport writes them.

const RT = 'a1b2c3d4e5f6'
const PREFIX = `${RT}-`
const OTHER = 'ffeeddccbbaa'

const root = { id: `${PREFIX}7`, sender: null, causationId: null, correlationId: `${PREFIX}7`, path: [], timestamp: 1 }
const caused = {
  id: `${PREFIX}9`,
  sender: 'orders',
  causationId: `${OTHER}-4`,
  correlationId: `${OTHER}-1`,
  path: ['checkout', 'orders'],
  timestamp: 1764662400124,
}
const event = { type: 'order.placed', payload: { sku: 'A-1', qty: 2 } }
const batch = [
  { type: 'line', payload: 1 },
  { type: 'line', payload: 2 },
]
/** A batch's extra context: one [id, causationId, correlationId] per event (requests.js start). */
const batchIds = (events, first) =>
  events.map((_, i) => [i === 0 ? first.id : `${PREFIX}${100 + i}`, first.causationId, first.correlationId])

/** A request's header as requests.js _direct writes it. */
const requestHeader = (causal, extra, again = false) =>
  again ? `[${encodeCausal(causal, extra, PREFIX)},1]` : `[${encodeCausal(causal, extra, PREFIX)}]`

/** A frame's body as requests.js frameBody writes it (`at`: a fan frame's runtime indexes). */
function frameBody(entries) {
  const values = []
  for (const { ids, branches, at, causal, body } of entries) {
    values.push(ids.length)
    for (const id of ids) values.push(JSON.stringify(id))
    values.push(...branches)
    if (at !== undefined) values.push(...at)
    values.push(causal, body)
  }
  return `[${values.join(',')}]`
}

const entry = (ids, branches, causal, extra, input, at) => ({
  ids,
  branches,
  at,
  causal: encodeCausal(causal, extra, PREFIX),
  body: JSON.stringify(input),
})

/** A reply message as serving.js _reply and _sendReplies write it. items: [branch, ok, steps text, rest]. */
function replyMessage(h, items) {
  let last = null
  const texts = items.map(([branch, ok, steps, rest]) => {
    const text = `[${branch},${ok},${steps === last ? '0' : steps}${rest === '' ? '' : ','}${rest}]`
    last = steps
    return text
  })
  return `{"h":${JSON.stringify(h)},"r":[${texts.join(',')}]}`
}
const success = (value) => (value === undefined ? '' : JSON.stringify(value))
/** `retry`: 1 (framed: ask the node's subject), 0 (sent there already) or undefined (none written). */
const failure = (error, step, retry) =>
  `${JSON.stringify(describeError(error))},${JSON.stringify(step)}${retry === undefined ? '' : `,${retry}`}`

const p = (text) => {
  const value = parse(text)
  expect(value).not.toBe(BAD_JSON)
  return value
}

// ---------------------------------------------------------------------------------------------

describe('parse', () => {
  it('parses JSON, and gives BAD_JSON for anything else instead of throwing', () => {
    expect(parse('[1,"a"]')).toEqual([1, 'a'])
    expect(parse('[1,')).toBe(BAD_JSON)
    expect(parse('')).toBe(BAD_JSON)
    expect(parse(undefined)).toBe(BAD_JSON)
    expect(parse('['.repeat(1_000_000))).toBe(BAD_JSON)
  })

  it('every check refuses BAD_JSON with a reason', () => {
    for (const reason of [
      checkRequest(BAD_JSON, BAD_JSON),
      checkFrame(BAD_JSON, '1'),
      checkFanHeader(BAD_JSON),
      checkFan(['a'], BAD_JSON),
      checkReplies(BAD_JSON),
      checkPresence(BAD_JSON),
    ])
      expect(reason).toEqual(expect.any(String))
  })
})

describe('requests on a node subject', () => {
  it('accepts a root event, a caused one with its trace and origin, a batch with its ids, and one sent again', () => {
    expect(checkRequest(p(requestHeader(root, 0)), p(JSON.stringify(event)))).toBeNull()
    const extra = { traceparent: '00-abc-def-01', tracestate: 'k=v', origin: [OTHER, 12] }
    expect(checkRequest(p(requestHeader(caused, extra)), p(JSON.stringify(event)))).toBeNull()
    const withIds = { batch: batchIds(batch, caused) }
    expect(checkRequest(p(requestHeader(caused, withIds)), p(JSON.stringify(batch)))).toBeNull()
    expect(checkRequest(p(requestHeader(root, 0, true)), p(JSON.stringify(event)))).toBeNull()
    // An event without payload (undefined is not written) and a foreign event id (a string).
    const foreign = { ...caused, id: `${OTHER}-77` }
    expect(checkRequest(p(requestHeader(foreign, 0)), p('{"type":"ping"}'))).toBeNull()
  })

  it('refuses a header of the wrong length, or that ends in anything but 1', () => {
    const values = p(requestHeader(root, 0))
    expect(checkRequest(values.slice(1), event)).toBe(
      'the causal header holds 6 values, not 7 (then 1 when sent again)',
    )
    expect(checkRequest([...values, 2], event)).toMatch(/holds 8 values/)
    expect(checkRequest({ id: 1 }, event)).toBe('the causal header is an object, not an array')
  })

  it('refuses each causal value of the wrong kind, naming it', () => {
    const good = p(requestHeader(caused, 0))
    const wrong = (at, value) => checkRequest(good.with(at, value), event)
    expect(wrong(0, -1)).toBe('the event id is -1, not a sequence number or a string')
    expect(wrong(0, 1.5)).toBe('the event id is 1.5, not a sequence number or a string')
    expect(wrong(1, 7)).toBe('the sender is 7, not a node id or null')
    expect(wrong(2, '')).toBe('the causation id is "", not a string or null')
    expect(wrong(3, 1)).toBe('the correlation id is 1, not 0 or a string')
    expect(wrong(4, 'checkout')).toBe('the path is "checkout", not an array of node ids')
    expect(wrong(4, ['a', null])).toBe('path[1] is null, not a node id')
    expect(checkRequest(p(`[${encodeCausal(root, 0, PREFIX).replace(',1,0', ',1e999,0')}]`), event)).toBe(
      'the timestamp is Infinity, not a finite number',
    )
    expect(wrong(6, 1)).toBe('the extra context is 1, not 0 or an object')
    expect(wrong(6, { origin: [OTHER, -1] })).toBe('origin is an array of 2, not [runtime, branch]')
    expect(wrong(6, { traceparent: 5 })).toBe('traceparent is 5, not a string')
  })

  it('refuses a batch whose batch ids are not one per event, and a lone event that carries some', () => {
    const three = [...batch, { type: 'line' }]
    const header = p(requestHeader(caused, { batch: batchIds(batch, caused) }))
    expect(checkRequest(header, three)).toBe('a batch of 3 events carries 2 batch ids, not one per event')
    expect(checkRequest(p(requestHeader(caused, 0)), batch)).toBe('a batch of 2 events carries no batch ids')
    expect(checkRequest(header, event)).toBe('a single event carries batch ids')
    expect(checkRequest(p(requestHeader(caused, { batch: [] })), [])).toBe('the batch is empty')
    const badIds = p(
      requestHeader(caused, {
        batch: [
          ['x', null, 'y'],
          ['x', 3, 'y'],
        ],
      }),
    )
    expect(checkRequest(badIds, batch)).toBe(
      'batch ids 1 are an array of 3, not [id, causation id or null, correlation id]',
    )
  })

  it('refuses an event without a type, or a batch with one such', () => {
    const header = p(requestHeader(root, 0))
    expect(checkRequest(header, { payload: 1 })).toBe('the event type is missing, not a non-empty string')
    expect(checkRequest(header, 'order')).toBe('the event is "order", not an event object or a batch')
    const withIds = p(requestHeader(root, { batch: batchIds(batch, root) }))
    expect(checkRequest(withIds, [event, { type: '' }])).toBe('the type of batch event 1 is "", not a non-empty string')
  })

  it("reads the sender's runtime (never its secret) and branch from a reply subject, or says it names none", () => {
    const inbox = `_HAPPEN.${RT}.s3cr3t-_x.`
    expect(runtimeOfReply(`${inbox}17`)).toBe(RT)
    expect(runtimeOfReply(`_HAPPEN.orders.${RT}.s3cr3t.17`)).toBe(`orders.${RT}`)
    expect(branchOfReply(`${inbox}17`)).toBe(17)
    expect(branchOfReply(`${inbox}x3`)).toBe(-1)
    expect(branchOfReply(`${inbox}-4`)).toBe(-1)
    expect(branchOfReply(`${inbox}1e3`)).toBe(-1)
    expect(branchOfReply(`${inbox}99999999999999999`)).toBe(-1)
    expect(runtimeOfReply('_INBOX.abc.def.1')).toBeNull()
    expect(runtimeOfReply('_HAPPEN..s.1')).toBeNull()
    expect(runtimeOfReply(`_HAPPEN.${RT}.17`)).toBeNull()
    expect(runtimeOfReply(`_HAPPEN.${'a'.repeat(RUNTIME_NAME_LIMIT + 1)}.s.1`)).toBeNull()
  })
})

describe('frames on happen.rt.<rt>', () => {
  const frame = [
    entry(['orders'], [4], root, 0, event),
    entry(['a', 'b', 'c'], [5, 6, 7], caused, { traceparent: '00-1-2-01' }, event),
    entry(['lines'], [8], caused, { batch: batchIds(batch, caused) }, batch),
  ]
  const body = frameBody(frame)

  it('accepts real frames whose header counts their entries', () => {
    expect(checkFrame(p(body), '3')).toBeNull()
    expect(checkFrame(p(frameBody(frame.slice(1, 2))), '1')).toBeNull()
  })

  it("refuses the issue's 25-byte frame whose entry count is -4.5", () => {
    expect(checkFrame(p('[-4.5,"x","y","z","w"]'), '1')).toBe(
      'entry 1: k is -4.5, but only 4 values follow: too few for an entry',
    )
  })

  it('refuses a negative or fractional k further in, naming the entry and the counts the message allows', () => {
    const list = p(body)
    const third = list.length - (1 + 1 + 1 + CAUSAL_FIELDS + 1)
    expect(list[third]).toBe(1)
    expect(checkFrame(list.with(third, -4.5), '3')).toBe('entry 3: k is -4.5, not an integer from 1 to 1')
    expect(checkFrame(list.with(third, -3), '3')).toBe('entry 3: k is -3, not an integer from 1 to 1')
    expect(checkFrame(list.with(0, 0), '3')).toBe('entry 1: k is 0, not an integer from 1 to 14')
  })

  it('refuses counts beyond the message, without looping or allocating by them', () => {
    const list = p(body)
    for (const k of [1e6, 2 ** 53, 1e300, 2 ** 32]) {
      const started = performance.now()
      expect(checkFrame(list.with(0, k), '3')).toBe(`entry 1: k is ${k}, not an integer from 1 to 14`)
      expect(performance.now() - started).toBeLessThan(50)
    }
    expect(checkFrame(list.with(0, '1'), '3')).toBe('entry 1: k is "1", not an integer from 1 to 14')
  })

  it('refuses fractional, negative or huge branch ids, and ids that are not strings', () => {
    const list = p(frameBody(frame.slice(1, 2)))
    expect(checkFrame(list.with(4, 0.5), '1')).toBe('entry 1: branch 0 is 0.5, not a non-negative integer')
    expect(checkFrame(list.with(6, -2), '1')).toBe('entry 1: branch 2 is -2, not a non-negative integer')
    expect(checkFrame(list.with(5, 2 ** 53), '1')).toBe(
      'entry 1: branch 1 is 9007199254740992, not a non-negative integer',
    )
    expect(checkFrame(list.with(2, 3), '1')).toBe('entry 1: node id 1 is 3, not a non-empty string')
  })

  it('refuses a header that is not the count of the entries found', () => {
    const list = p(body)
    expect(checkFrame(list, '2')).toBe('the header counts 2 entries, the body holds 3')
    expect(checkFrame(list, '4')).toBe('the header counts 4 entries, the body holds 3')
    for (const header of ['-3', '3.0', ' 3', '03', '', '1e1', 'three'])
      expect(checkFrame(list, header)).toBe(`the header ${JSON.stringify(header)} is not an entry count`)
    expect(checkFrame([], '0')).toBe('the body holds no entries')
    expect(checkFrame({ 0: 1 }, '1')).toBe('the body is an object, not an array of entries')
  })

  it('refuses an entry whose event or causal context is bad, naming the entry', () => {
    const list = p(body)
    const last = list.length - 1
    expect(checkFrame(list.with(last, [event]), '3')).toBe(
      'entry 3: a batch of 1 events carries 2 batch ids, not one per event',
    )
    expect(checkFrame(list.with(last - CAUSAL_FIELDS + 5, null), '3')).toBe(
      'entry 3: the timestamp is null, not a finite number',
    )
  })
})

describe('fan frames on happen.fan', () => {
  const t = [RT, OTHER, 'c0ffee000001']
  const fan = [
    entry(['orders', 'billing'], [4, 5], root, 0, event, [0, 2]),
    entry(['lines'], [6], caused, { batch: batchIds(batch, caused) }, batch, [1]),
  ]
  const body = frameBody(fan)

  it('accepts a real fan frame and its header', () => {
    expect(checkFanHeader(p(JSON.stringify({ t })))).toBeNull()
    expect(checkFan(t, p(body))).toBeNull()
  })

  it("refuses the issue's 4-byte fan frame whose count is -3", () => {
    expect(checkFan(t, p('[-3]'))).toBe('entry 1: k is -3, but only 0 values follow: too few for an entry')
  })

  it('refuses a runtime index outside t, or not an integer', () => {
    const list = p(body)
    // k, 2 ids, 2 branches, then the indexes.
    expect(checkFan(t, list.with(6, 3))).toBe(
      'entry 1: the runtime index of node id 1 is 3, not an integer from 0 to 2',
    )
    expect(checkFan(t, list.with(5, -1))).toBe(
      'entry 1: the runtime index of node id 0 is -1, not an integer from 0 to 2',
    )
    expect(checkFan(t, list.with(5, 0.5))).toMatch(/index of node id 0 is 0.5/)
    expect(checkFan(t.slice(0, 2), list)).toBe(
      'entry 1: the runtime index of node id 1 is 2, not an integer from 0 to 1',
    )
  })

  it('refuses a header whose t is not a non-empty list of runtime names', () => {
    expect(checkFanHeader({ t: [] })).toBe('t is an array of 0, not a non-empty array of runtimes')
    expect(checkFanHeader({ t: [RT, 'a b'] })).toBe('t[1] is "a b", not a runtime name')
    expect(checkFanHeader({ t: ['a..b'] })).toBe('t[0] is "a..b", not a runtime name')
    expect(checkFanHeader({ t: RT })).toMatch(/^t is "a1b2c3d4e5f6", not/)
    expect(checkFanHeader([t])).toBe('the header is an array of 1, not {t: [runtimes]}')
    expect(checkFan('abc', p(body))).toMatch(/^t is "abc"/)
  })
})

describe('reply messages on the inbox', () => {
  const steps = JSON.stringify(['validate', 'charge'])
  const thrown = new HappenError('NO_RESPONDERS', "Node 'x' is no longer served by this process")

  it('accepts real replies: values, no value, failures, retries, and steps "as the item before"', () => {
    const text = replyMessage(OTHER, [
      [4, 1, steps, success({ ok: true })],
      [5, 1, steps, success(undefined)],
      [6, 0, steps, failure(new TypeError('bad'), 'charge')],
      [7, 0, '[]', failure(thrown, '(transport)', 1)],
      [10, 0, '[]', failure(thrown, '(transport)', 0)],
      [8, 0, '[]', failure('a string thrown', '(delivery)')],
    ])
    expect(text).toContain('[5,1,0]')
    expect(checkReplies(p(text))).toBeNull()
    // An error whose code is a number (user code may set one) still reaches its requester.
    const coded = Object.assign(new Error('disk'), { code: 28 })
    expect(checkReplies(p(replyMessage(OTHER, [[9, 0, '[]', failure(coded, 'write')]])))).toBeNull()
  })

  it('refuses items of the wrong shape, naming the item', () => {
    const one = (item) => checkReplies({ h: OTHER, r: [item] })
    expect(one([1.5, 1, []])).toBe('reply 0: the branch is 1.5, not a non-negative integer')
    expect(one([-1, 1, []])).toBe('reply 0: the branch is -1, not a non-negative integer')
    expect(one([1, 2, []])).toBe('reply 0: ok is 2, not 1 or 0')
    expect(one([1, 1, 0])).toBe('reply 0: the first item has steps 0 (as the item before), but none comes before')
    expect(one([1, 1, [3]])).toBe('reply 0: step 0 is 3, not a string')
    expect(one([1, 1, [], 'v', 'extra'])).toBe('reply 0: a success holds 5 values, not 3 or 4')
    expect(one([1, 0, [], { message: 'm', code: null, name: 'Error' }])).toBe(
      'reply 0: a failure holds 4 values, not 5 or 6',
    )
    expect(one([1, 0, [], { message: 'm', code: null, name: 'Error' }, 's', true])).toBe(
      'reply 0: retry is true, not 1 or 0',
    )
    expect(one([1, 0, [], { message: { toString: 1 }, code: null, name: 'E' }, 's'])).toBe(
      'reply 0: the error message is an object, not a string',
    )
    expect(one([1, 0, [], { message: 'm', code: {}, name: 'E' }, 's'])).toBe(
      'reply 0: the error code is an object, not a string, number or null',
    )
    expect(checkReplies({ h: OTHER, r: [[1, 1, []], 'x'] })).toBe('reply 1: it is "x", not an array')
  })

  it('refuses a message without a replying runtime or replies', () => {
    expect(checkReplies({ h: 'a.b c', r: [[1, 1, []]] })).toBe('h is "a.b c", not a runtime name')
    expect(checkReplies({ h: OTHER, r: [] })).toBe('r is an array of 0, not a non-empty array of replies')
    expect(checkReplies({ h: OTHER })).toBe('r is missing, not a non-empty array of replies')
    expect(checkReplies([OTHER, []])).toBe('the message is an array of 2, not {h, r}')
  })
})

describe('presence on happen.presence', () => {
  it('accepts hello, up and down', () => {
    expect(checkPresence(p(JSON.stringify({ hello: true, rt: RT })))).toBeNull()
    const up = { up: ['orders', 'billing'], at: [1764662400123, 1764662400124], first: true, rt: RT }
    expect(checkPresence(p(JSON.stringify(up)))).toBeNull()
    expect(checkPresence(p(JSON.stringify({ up: [], at: [], first: false, rt: RT })))).toBeNull()
    expect(checkPresence(p(JSON.stringify({ down: ['orders'], rt: RT })))).toBeNull()
  })

  it('refuses a message of no kind or of two, and each field of the wrong kind', () => {
    expect(checkPresence({ rt: RT })).toBe('it holds 0 of hello, up and down, not exactly one')
    expect(checkPresence({ down: [], hello: true, rt: RT })).toBe('it holds 2 of hello, up and down, not exactly one')
    expect(checkPresence({ hello: `_HAPPEN.${RT}.`, rt: RT })).toBe('hello is "_HAPPEN.a1b2c3d4e5f6.", not true')
    expect(checkPresence({ hello: true, rt: `${RT}.` })).toBe('rt is "a1b2c3d4e5f6.", not a runtime name')
    expect(checkPresence({ hello: true })).toBe('rt is missing, not a runtime name')
    expect(checkPresence({ up: ['a', 'b'], at: [1], first: true, rt: RT })).toBe(
      'at is an array of 1, not 2 claim times',
    )
    expect(checkPresence({ up: ['a'], at: ['1'], first: true, rt: RT })).toBe('at[0] is "1", not a number')
    expect(checkPresence({ up: ['a'], at: [1], first: 1, rt: RT })).toBe('first is 1, not a boolean')
    expect(checkPresence({ up: 'a', at: [1], first: true, rt: RT })).toBe('up is "a", not an array of node ids')
    expect(checkPresence({ down: [''], rt: RT })).toBe('down[0] is "", not a node id')
  })

  it('accepts runtime names of subject-safe tokens up to the limit, and no longer', () => {
    expect(checkPresence({ hello: true, rt: 'a-b_c.D9' })).toBeNull()
    expect(checkPresence({ hello: true, rt: 'a'.repeat(RUNTIME_NAME_LIMIT) })).toBeNull()
    expect(checkPresence({ hello: true, rt: 'a'.repeat(RUNTIME_NAME_LIMIT + 1) })).toMatch(/not a runtime name/)
    for (const rt of ['', '.a', 'a.', 'a..b', 'a*', 'a>', 'é', 'a\nb'])
      expect(checkPresence({ hello: true, rt })).toMatch(/not a runtime name/)
  })
})

// ---------------------------------------------------------------------------------------------
// Properties: real messages of every kind are accepted; random JSON and mutated real messages
// never make a check throw, take long or allocate more than a small multiple of their size.

const nodeId = fc.oneof(
  fc.string({ minLength: 1, maxLength: 12 }),
  fc.string({ minLength: 1, maxLength: 4, unit: 'grapheme' }),
)
const runtimeName = fc.stringMatching(/^[a-f0-9]{12}$/)
const causalArb = fc
  .record({
    seq: fc.nat(),
    foreign: fc.boolean(),
    sender: fc.option(nodeId),
    causationId: fc.option(fc.nat().map((n) => `${OTHER}-${n}`)),
    ownCorrelation: fc.boolean(),
    path: fc.array(nodeId, { maxLength: 3 }),
    timestamp: fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.double({ noNaN: true, noDefaultInfinity: true })),
  })
  .map(({ seq, foreign, ownCorrelation, ...rest }) => {
    const id = foreign ? `${OTHER}-${seq}` : `${PREFIX}${seq}`
    return { ...rest, id, correlationId: ownCorrelation ? id : `${OTHER}-1` }
  })
const eventArb = fc.record({ type: nodeId, payload: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }) })
const inputArb = fc.oneof(eventArb, fc.array(eventArb, { minLength: 1, maxLength: 3 }))
const extraArb = (causal, input) =>
  fc
    .record({
      traceparent: fc.option(fc.string(), { nil: undefined }),
      origin: fc.option(fc.tuple(runtimeName, fc.nat()), { nil: undefined }),
    })
    .map(({ traceparent, origin }) => {
      const extra = {}
      if (traceparent !== undefined) extra.traceparent = traceparent
      if (origin !== undefined) extra.origin = origin
      if (Array.isArray(input)) extra.batch = batchIds(input, causal)
      return Object.keys(extra).length === 0 ? 0 : extra
    })
/** What one send carries: its causal context, extra context and event (or batch). */
const sendArb = fc
  .tuple(causalArb, inputArb)
  .chain(([causal, input]) => extraArb(causal, input).map((extra) => ({ causal, extra, input })))

const requestArb = fc.tuple(sendArb, fc.boolean()).map(([{ causal, extra, input }, again]) => ({
  header: requestHeader(causal, extra, again),
  body: JSON.stringify(input),
}))

const entriesArb = (targets) =>
  fc.array(
    fc.tuple(
      sendArb,
      fc.array(fc.tuple(nodeId, fc.nat(), fc.nat({ max: Math.max(0, targets - 1) })), { minLength: 1, maxLength: 4 }),
    ),
    { minLength: 1, maxLength: 5 },
  )
const frameArb = entriesArb(0).map((entries) => ({
  header: String(entries.length),
  body: frameBody(
    entries.map(([{ causal, extra, input }, nodes]) =>
      entry(
        nodes.map((n) => n[0]),
        nodes.map((n) => n[1]),
        causal,
        extra,
        input,
      ),
    ),
  ),
}))
const fanArb = fc.array(runtimeName, { minLength: 1, maxLength: 4 }).chain((t) =>
  entriesArb(t.length).map((entries) => ({
    header: JSON.stringify({ t }),
    body: frameBody(
      entries.map(([{ causal, extra, input }, nodes]) =>
        entry(
          nodes.map((n) => n[0]),
          nodes.map((n) => n[1]),
          causal,
          extra,
          input,
          nodes.map((n) => n[2]),
        ),
      ),
    ),
  })),
)
const errorArb = fc.oneof(
  fc.string().map((message) => new Error(message)),
  fc
    .tuple(fc.constantFrom('NO_RESPONDERS', 'NODE_LOST', 'TIMEOUT'), fc.string())
    .map(([c, m]) => new HappenError(c, m)),
  fc.string(),
  fc.integer().map((code) => Object.assign(new RangeError('e'), { code })),
)
const replyItemArb = fc.oneof(
  fc
    .tuple(
      fc.nat(),
      fc.array(fc.string(), { maxLength: 3 }),
      fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }),
    )
    .map(([branch, steps, value]) => [branch, 1, JSON.stringify(steps), success(value)]),
  fc
    .tuple(fc.nat(), fc.array(fc.string(), { maxLength: 3 }), errorArb, fc.string(), fc.constantFrom(undefined, 0, 1))
    .map(([branch, steps, error, step, retry]) => [branch, 0, JSON.stringify(steps), failure(error, step, retry)]),
)
const repliesArb = fc
  .tuple(runtimeName, fc.array(replyItemArb, { minLength: 1, maxLength: 6 }))
  .map(([h, items]) => ({ body: replyMessage(h, items) }))
const presenceArb = fc
  .oneof(
    runtimeName.map((rt) => ({ hello: true, rt })),
    fc
      .tuple(
        fc.array(fc.tuple(nodeId, fc.integer({ min: 0, max: 2 ** 45 })), { maxLength: 4 }),
        fc.boolean(),
        runtimeName,
      )
      .map(([ups, first, rt]) => ({ up: ups.map((u) => u[0]), at: ups.map((u) => u[1]), first, rt })),
    fc.tuple(fc.array(nodeId, { maxLength: 4 }), runtimeName).map(([down, rt]) => ({ down, rt })),
  )
  .map((message) => ({ body: JSON.stringify(message) }))

/** Each kind: its real messages, and how the transport checks one (texts as they arrive). */
const KINDS = {
  request: { arb: requestArb, check: ({ header, body }) => checkRequest(parse(header), parse(body)) },
  frame: { arb: frameArb, check: ({ header, body }) => checkFrame(parse(body), header) },
  fan: {
    arb: fanArb,
    check: ({ header, body }) => {
      const parsed = parse(header)
      return checkFanHeader(parsed) ?? checkFan(parsed.t, parse(body))
    },
  },
  reply: { arb: repliesArb, check: ({ body }) => checkReplies(parse(body)) },
  presence: { arb: presenceArb, check: ({ body }) => checkPresence(parse(body)) },
}

const nasty = fc.oneof(
  fc.constantFrom(-1, -3, -4.5, 0.5, 1.5, -0, 2 ** 53, 2 ** 31, 1e300, 1e6, 'NaN', 'Infinity', '-3', '1e999', ''),
  fc.constantFrom(null, true, false, [], {}, [1], { type: 1 }, { t: [] }, { batch: [] }, 0, 1),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 8 }),
  fc.jsonValue({ maxDepth: 2 }),
)
/** A change to one array or object somewhere in a parsed message (`where` picks which). */
const mutationArb = fc.record({
  op: fc.constantFrom('delete', 'insert', 'replace', 'negate', 'halve', 'huge'),
  where: fc.nat(),
  at: fc.nat(),
  key: fc.constantFrom('t', 'h', 'r', 'rt', 'up', 'at', 'down', 'hello', 'first', 'type', 'batch', 'origin', 'extra'),
  value: nasty,
})

function containers(value, found = [], depth = 0) {
  if (typeof value !== 'object' || value === null || depth > 4) return found
  found.push(value)
  for (const key of Object.keys(value)) containers(value[key], found, depth + 1)
  return found
}

/** Applies the mutations to a copy of the parsed value; numbers go negative, fractional or huge. */
function mutate(value, mutations) {
  const copy = value === BAD_JSON ? value : structuredClone(value)
  for (const { op, where, at, key, value: nastyValue } of mutations) {
    const all = containers(copy)
    if (all.length === 0) break
    const target = all[where % all.length]
    const keys = Object.keys(target)
    const name = Array.isArray(target)
      ? keys.length === 0
        ? 0
        : at % (keys.length + 1)
      : keys.length === 0 || op === 'insert'
        ? key
        : keys[at % keys.length]
    const old = target[name]
    if (op === 'delete') Array.isArray(target) ? target.splice(name, 1) : delete target[name]
    else if (op === 'insert' && Array.isArray(target)) target.splice(name, 0, structuredClone(nastyValue))
    else if (op === 'negate' && typeof old === 'number') target[name] = -old - 1
    else if (op === 'halve' && typeof old === 'number') target[name] = old + 0.5
    else if (op === 'huge' && typeof old === 'number') target[name] = old + 2 ** 53
    else target[name] = structuredClone(nastyValue)
  }
  return copy
}

/** A text changed where JSON is most fragile: cut short, or a character replaced. */
const textMutationArb = fc.record({
  cut: fc.nat(),
  char: fc.constantFrom('-', '.', '5', ',', '[', ']', '"', 'e', ' ', '0'),
})
function mutateText(text, { cut, char }) {
  const at = cut % (text.length + 1)
  return cut % 2 === 0 ? text.slice(0, at) : text.slice(0, at) + char + text.slice(at + 1)
}

/** A message's parsed header and body, mutated (the header by the first mutation alone). */
function mutated(message, mutations) {
  const header = message.header === undefined ? undefined : mutate(parse(message.header), mutations.slice(0, 1))
  return { text: message.header, header, body: mutate(parse(message.body), mutations) }
}

/** The kind's check on a parsed message (a frame's header stays the text it came as). */
function checkParsed(kind, { text, header, body }) {
  if (kind === 'request') return checkRequest(header, body)
  if (kind === 'frame') return checkFrame(body, text)
  if (kind === 'fan') return checkFanHeader(header) ?? checkFan(header.t, body)
  return kind === 'reply' ? checkReplies(body) : checkPresence(body)
}

/**
 * Walks an accepted frame as serving.js _onFrame does (k, ids, branches, causal values, event):
 * it must end, count the header's entries, and read nothing past the list.
 */
function walkFrame(list, perNode) {
  let entries = 0
  for (let at = 0; at < list.length; entries++) {
    const k = list[at]
    const causal = at + 1 + perNode * k
    at = causal + CAUSAL_FIELDS + 1
    expect(Number.isInteger(k) && k >= 1).toBe(true)
    expect(at).toBeLessThanOrEqual(list.length)
  }
  return entries
}

const gc = (() => {
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc')
})()
/**
 * Bytes one call of `fn` allocates: measured over REPEAT calls after a full collection, the
 * least of three tries, once `fn` is warm (compiling code allocates too, a few KiB at times).
 */
const REPEAT = 200
function allocated(fn) {
  for (let i = 0; i < 500; i++) fn()
  let least = Infinity
  for (let i = 0; i < 3; i++) {
    gc()
    const before = process.memoryUsage().heapUsed
    for (let j = 0; j < REPEAT; j++) fn()
    least = Math.min(least, process.memoryUsage().heapUsed - before)
  }
  return least / REPEAT
}

describe('properties', () => {
  const options = { numRuns: Math.ceil(RUNS / 6), seed: SEED }

  for (const [kind, { arb, check }] of Object.entries(KINDS)) {
    it(`accepts every real ${kind} message`, () => {
      fc.assert(
        fc.property(arb, (message) => {
          expect(check(message)).toBeNull()
        }),
        options,
      )
    })

    it(`never throws or takes long on a mutated ${kind} message`, () => {
      fc.assert(
        fc.property(arb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (message, mutations) => {
          const parsed = mutated(message, mutations)
          const started = performance.now()
          const reason = checkParsed(kind, parsed)
          expect(performance.now() - started).toBeLessThan(50)
          expect(reason === null || typeof reason === 'string').toBe(true)
          if (reason !== null || (kind !== 'frame' && kind !== 'fan')) return
          // Accepted: serving.js's walk of it stays inside the list.
          const entries = walkFrame(parsed.body, kind === 'fan' ? 3 : 2)
          if (kind === 'frame') expect(entries).toBe(Number(message.header))
        }),
        options,
      )
    })

    it(`never throws on a ${kind} message cut short or with a character changed`, () => {
      fc.assert(
        fc.property(arb, textMutationArb, (message, change) => {
          const changed = { ...message, body: mutateText(message.body, change) }
          const reason = check(changed)
          expect(reason === null || typeof reason === 'string').toBe(true)
        }),
        options,
      )
    })
  }

  it('never throws on random JSON, whatever check it reaches', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 4 }), fc.json({ maxDepth: 2 }), (text, header) => {
        const value = parse(text)
        const head = parse(header)
        for (const reason of [
          checkRequest(head, value),
          checkRequest(value, value),
          checkFrame(value, header),
          checkFrame(value, String(Array.isArray(value) ? value.length : 1)),
          checkFanHeader(value),
          checkFan(head, value),
          checkFan(['a'], value),
          checkReplies(value),
          checkPresence(value),
        ])
          expect(reason === null || typeof reason === 'string').toBe(true)
      }),
      options,
    )
  })

  it('allocates at most a small multiple of the message size, refused or not', () => {
    fc.assert(
      fc.property(
        fc
          .constantFrom(...Object.keys(KINDS))
          .chain((kind) => fc.tuple(fc.constant(kind), KINDS[kind].arb, fc.array(mutationArb, { maxLength: 3 }))),
        ([kind, message, mutations]) => {
          const parsed = mutated(message, mutations)
          const size = message.body.length + (message.header?.length ?? 0)
          const check = () => checkParsed(kind, parsed)
          expect(allocated(check)).toBeLessThanOrEqual(4 * size + 2048)
        },
      ),
      // Shrinking would measure thousands of candidates: the first failure is reported as it is.
      { numRuns: 50, seed: SEED, endOnFailure: true },
    )
  })

  it('allocates nothing for a good frame of a thousand entries, and little to refuse one', () => {
    const entries = []
    for (let i = 0; i < 1000; i++) entries.push(entry([`node${i}`], [i], root, 0, event))
    const list = p(frameBody(entries))
    expect(checkFrame(list, '1000')).toBeNull()
    expect(allocated(() => checkFrame(list, '1000'))).toBeLessThan(64)
    const bad = list.with(list.length - 11, -4.5)
    expect(checkFrame(bad, '1000')).toMatch(/^entry 1000: k is -4.5/)
    expect(allocated(() => checkFrame(bad, '1000'))).toBeLessThan(1024)
  })
})

// ---------------------------------------------------------------------------------------------

describe('Drops', () => {
  afterEach(() => {
    vi.useRealTimers()
    vi.restoreAllMocks()
  })

  /** A Drops whose clock, log and warnings the test holds. */
  function drops() {
    const seen = { logs: [], warnings: [], now: 0 }
    const d = new Drops({
      now: () => seen.now,
      log: (...args) => seen.logs.push(args),
      warn: (message) => seen.warnings.push(message),
    })
    return { d, seen }
  }

  it('counts drops by kind and reason', () => {
    const { d } = drops()
    d.drop('frame', `happen.rt.${RT}`, OTHER, 'entry 1: k is -4.5')
    d.drop('frame', `happen.rt.${RT}`, OTHER, 'entry 1: k is -4.5')
    d.drop('fan', 'happen.fan', null, 'entry 1: k is -3')
    expect(d.counts()).toEqual({
      total: 3,
      byKind: { frame: 2, fan: 1 },
      byReason: { frame: { 'entry 1: k is -4.5': 2 }, fan: { 'entry 1: k is -3': 1 } },
    })
  })

  it('counts at most REASON_LIMIT distinct reasons per kind, the rest together', () => {
    const { d } = drops()
    for (let i = 0; i < REASON_LIMIT + 50; i++) d.drop('frame', 'happen.rt.x', OTHER, `entry ${i}: bad`)
    const { byReason, byKind } = d.counts()
    expect(Object.keys(byReason.frame)).toHaveLength(REASON_LIMIT + 1)
    expect(byReason.frame['(other reasons)']).toBe(50)
    expect(byKind.frame).toBe(REASON_LIMIT + 50)
  })

  it('logs each (sender, reason) once', () => {
    const { d, seen } = drops()
    for (let i = 0; i < 3; i++) d.drop('frame', `happen.rt.${RT}`, OTHER, 'entry 1: k is -4.5')
    d.drop('frame', `happen.rt.${RT}`, 'c0ffee000001', 'entry 1: k is -4.5')
    d.drop('frame', `happen.rt.${RT}`, OTHER, 'the body holds no entries')
    expect(seen.logs).toEqual([
      ['frame', `happen.rt.${RT}`, `runtime ${OTHER}`, 'entry 1: k is -4.5'],
      ['frame', `happen.rt.${RT}`, 'runtime c0ffee000001', 'entry 1: k is -4.5'],
      ['frame', `happen.rt.${RT}`, `runtime ${OTHER}`, 'the body holds no entries'],
    ])
  })

  it('remembers a bounded set of pairs: a flood of distinct senders does not grow it without bound', () => {
    const { d, seen } = drops()
    for (let i = 0; i < 5 * PAIR_LIMIT; i++) {
      d.drop('reply', `_HAPPEN.${RT}.f`, `sender${i}`, 'h is missing')
      expect(d.logged.size).toBeLessThanOrEqual(PAIR_LIMIT)
    }
    expect(seen.logs).toHaveLength(5 * PAIR_LIMIT)
  })

  it('warns at most once per minute, naming subject, sender, reason and how many were dropped since', () => {
    const { d, seen } = drops()
    d.drop('frame', `happen.rt.${RT}`, OTHER, 'entry 1: k is -4.5')
    expect(seen.warnings).toEqual([
      `happen: dropped a malformed NATS frame on happen.rt.${RT} from runtime ${OTHER}: entry 1: k is -4.5 (1 malformed message dropped; NODE_DEBUG=happen logs each once per sender and reason)`,
    ])
    for (let i = 0; i < 10; i++) {
      seen.now += 5_000
      d.drop('fan', 'happen.fan', null, 'entry 1: k is -3')
    }
    expect(seen.warnings).toHaveLength(1)
    seen.now += 10_000
    d.drop('fan', 'happen.fan', null, 'entry 1: k is -3')
    expect(seen.warnings).toHaveLength(2)
    expect(seen.warnings[1]).toBe(
      'happen: dropped a malformed NATS fan on happen.fan from an unknown runtime: entry 1: k is -3 (11 malformed messages dropped since the last warning; NODE_DEBUG=happen logs each once per sender and reason)',
    )
  })

  it('warns through process.emitWarning on the real clock by default', () => {
    vi.useFakeTimers()
    const emit = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    const d = new Drops({ log: null })
    d.drop('presence', 'happen.presence', RT, 'rt is missing, not a runtime name')
    d.drop('presence', 'happen.presence', RT, 'rt is missing, not a runtime name')
    expect(emit).toHaveBeenCalledTimes(1)
    expect(emit.mock.calls[0][1]).toEqual({ code: 'HAPPEN_DROPPED_MESSAGE' })
    vi.advanceTimersByTime(59_999)
    d.drop('presence', 'happen.presence', RT, 'rt is missing, not a runtime name')
    expect(emit).toHaveBeenCalledTimes(1)
    vi.advanceTimersByTime(1)
    d.drop('presence', 'happen.presence', RT, 'rt is missing, not a runtime name')
    expect(emit).toHaveBeenCalledTimes(2)
    expect(emit.mock.calls[1][0]).toMatch(/\(3 malformed messages dropped since the last warning;/)
  })

  it('prints what strangers sent clipped, without control characters', () => {
    const { d, seen } = drops()
    const sender = `evil\n${'x'.repeat(500)}`
    d.drop('frame', `happen.rt.${'y'.repeat(500)}\u001b[2J`, sender, 'entry 1: k is -4.5')
    const [, subject, who] = seen.logs[0]
    expect(subject).toHaveLength(120)
    expect(who).toBe(`runtime evil?${'x'.repeat(72)}...`)
    expect(seen.warnings[0].includes('\n') || seen.warnings[0].includes('\u001b')).toBe(false)
    expect(seen.warnings[0].length).toBeLessThan(700)
    // A sender taken from a refused message may be any JSON value.
    d.drop('reply', `_HAPPEN.${RT}.f`, { toString: 1 }, 'h is an object, not a runtime name')
    expect(seen.logs[1][2]).toBe('runtime an object')
  })
})
