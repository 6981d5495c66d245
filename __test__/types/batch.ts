// A batch's events carry their payload typed as the handler's `P`, as a single event does: under
// --strict, the batch branch reads `events[0].payload.sku` with no `?.` or `!`. Compiled under
// `module: nodenext` (tsconfig.json) and `module: commonjs` (tsconfig.commonjs.json); each
// `@ts-expect-error` must be an error under both.
import { createNode, type DeliveredBatch } from 'happen'

interface Order {
  sku: string
  quantity: number
}

const orders = createNode('batch-orders')

export function batchPayloadsAreTyped() {
  orders.on<Order>('order.created', (events) => {
    if (Array.isArray(events)) {
      const sku: string = events[0].payload.sku
      const quantities: number[] = events.map((e) => e.payload.quantity)
      // @ts-expect-error Order has no field nope
      events[0].payload.nope
      // @ts-expect-error sku is a string
      const wrong: number = events[0].payload.sku
      return { sku, quantities, wrong }
    }
    return events.payload.sku
  })
  // A handler for batches only reads its payloads the same way.
  const skus = (events: DeliveredBatch<Order>) => events.map((e) => e.payload.sku).join(',')
  orders.on<Order>('order.batch', skus)
  // An event of a batch can be sent on as it is.
  orders.on<Order>('order.forward', (events) => (Array.isArray(events) ? orders.send(events[0]) : null))
}
