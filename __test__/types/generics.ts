// Types generic over payloads and results, the batch branch typed as the batch context, and
// the mistakes these types refuse (each `@ts-expect-error` must be an error under --strict).
import {
  createNode,
  createNodeArray,
  initializeHappen,
  trace,
  type BatchContext,
  type DeliveredBatch,
  type HandlerContext,
} from 'happen'

interface OrderPayload {
  sku: string
  quantity: number
}

const orders = createNode('orders')
const payments = createNode('payments')
const nodes = createNodeArray([orders, payments])

export function payloadsAreTyped() {
  orders.on<OrderPayload>('order.created', (event) => event.payload.sku)
  orders.on<OrderPayload>('order.created', (event) => {
    if (Array.isArray(event)) return event.map((e) => e.payload?.quantity)
    const quantity: number = event.payload.quantity
    // @ts-expect-error sku is a string
    const wrong: number = event.payload.sku
    // @ts-expect-error OrderPayload has no field price
    event.payload.price
    return quantity + wrong
  })
  nodes.on<OrderPayload>(
    'order.*',
    (event, context) => `${context.node.id}: ${Array.isArray(event) ? event.length : event.payload.sku}`,
  )
}

export function theBatchBranchHasTheBatchContext() {
  orders.on('metric', (events, context) => {
    if (Array.isArray(events)) {
      const received: number = context.receivedAt
      // @ts-expect-error receivedAt is a number, not any
      const wrong: string = context.receivedAt
      const first = context.events[0].causal.id
      // @ts-expect-error a causal context is read-only
      context.events[0].causal.id = 'x'
      return { received, first, wrong }
    }
    // @ts-expect-error a single event's causal id is a string
    const n: number = context.causal.id
    return events.type + n
  })
  // A handler for batches only may say so.
  const batchOnly = (events: DeliveredBatch<OrderPayload>, context: BatchContext) => events.length + context.receivedAt
  orders.on<OrderPayload>('order.batch', batchOnly)
  const any = (context: HandlerContext) => context.node.id
  return any
}

export async function resultsAreTyped() {
  const one: string = await orders.send<string>({ type: 'x' }).return()
  const fromPayments: boolean = await orders.send<boolean>(payments, { type: 'x' }).return()
  const keyed: Record<string, number> = await nodes.send<number>({ type: 'x' }).return()
  const viaArray: Record<string, number> = await orders.send<number>([orders, payments], { type: 'x' }).return()
  const processed: number = await orders.process<number>({ type: 'x' })
  const processedAll: Record<string, number> = await nodes.process<number>({ type: 'x' })
  const broadcast: Record<string, string> = await orders.broadcast<string>({ type: 'x' }).return()
  const settled = await nodes.send<number>({ type: 'x' }).return({ settled: true })
  const entry = settled.orders
  if (entry.status === 'fulfilled') {
    const value: number = entry.value
    // @ts-expect-error a fulfilled entry's value is the result type
    const wrong: string = entry.value
    void [value, wrong]
  }
  // @ts-expect-error a keyed send's results are a record, not one result
  const notOne: number = await nodes.send<number>({ type: 'x' }).return()
  // @ts-expect-error a single target's result is not a record
  const notKeyed: Record<string, number> = await orders.send<number>(payments, { type: 'x' }).return()
  return { one, fromPayments, keyed, viaArray, processed, processedAll, broadcast, notOne, notKeyed }
}

export async function traceTakesTheIdOfASend() {
  const result = await orders.send({ type: 'x' })
  const tree = trace(result.id)
  const batch = await orders.send([{ type: 'a' }, { type: 'b' }])
  const batchTree = trace(batch.id)
  const fanOut = await nodes.send({ type: 'x' })
  initializeHappen().trace(fanOut.id)
  const events: { type: string }[] = []
  const maybeEmpty = await orders.send(events)
  // @ts-expect-error an empty batch has no id (null): trace(id) takes a string
  trace(maybeEmpty.id)
  if (maybeEmpty.id !== null) trace(maybeEmpty.id)
  return { tree, batchTree, viaResult: maybeEmpty.trace() }
}

export function createNodeRefusesUnknownOptions() {
  createNode('ok', {})
  // @ts-expect-error createNode has no options yet
  createNode('bad', { historySize: 5 })
  // @ts-expect-error '**' or not, a pattern is a string or a predicate
  orders.on(['order.**'], () => {})
}

export function sendingFromInsideAHandler() {
  orders.on('order.created', async (event, context) => {
    await context.node.send(payments, { type: 'payment.requested', payload: event.payload })
    return context.node.send<boolean>('payments', { type: 'payment.check' }).return()
  })
}

export async function natsBoundsAreNumbers() {
  const happen = await initializeHappen({
    transport: { type: 'nats', servers: ['nats://127.0.0.1:4222'], maxInFlight: 256, maxInFlightBytes: 1 << 20 },
  })
  // A send past the bound resolves once let go: what it gives is the send's result.
  const sent = await happen.node('remote').send({ type: 'ping' })
  const id: string = sent.id
  // @ts-expect-error maxInFlight is a number of branches
  initializeHappen({ transport: { type: 'nats', servers: [], maxInFlight: '256' } })
  return id
}
