// One process of the distributed example: hosts the nodes named on its command line.
//   node worker.mjs <nats url> <node id>[,<node id>...]
import { initializeHappen, createNodeArray } from 'happen'

const [url, ids] = process.argv.slice(2)
const happen = await initializeHappen({ transport: { type: 'nats', servers: [url] } })
const nodes = createNodeArray(ids.split(',').map((id) => happen.createNode(id)))

nodes.on('verify-order', function checkOrder(event, context) {
  const { node, causal } = context
  if (node.id === 'inventory-node') {
    // A divergent flow: the inventory reserves stock next, and tells the order node about it.
    return async function reserveStock() {
      const order = happen.node('order-node')
      await happen
        .node(node.id)
        .send(order, { type: 'stock-reserved', payload: { sku: event.payload.sku } })
        .return()
      return { node: node.id, pid: process.pid, reserved: event.payload.quantity }
    }
  }
  return { node: node.id, pid: process.pid, ok: true, event: causal.id }
})

await happen.ready()
process.stdout.write(`ready ${ids} (pid ${process.pid})\n`)
// Serve until the parent closes our stdin.
process.stdin.resume()
process.stdin.on('end', async () => {
  await happen.shutdown()
  process.exit(0)
})
