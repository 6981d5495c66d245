// The distributed example: one fan-out across three processes over NATS, then its trace.
//   nats-server -a 127.0.0.1 -p 4222 &     (Debian: apt-get install nats-server)
//   node examples/distributed/main.mjs [nats://127.0.0.1:4222]
// This process hosts order-node and starts two workers: payment-node in one, inventory-node
// and shipping-node in the other.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { initializeHappen, createNodeArray } from 'happen'

const url = process.argv[2] || process.env.HAPPEN_NATS_URL || 'nats://127.0.0.1:4222'
const worker = fileURLToPath(new URL('./worker.mjs', import.meta.url))

function start(ids) {
  const child = spawn(process.execPath, [worker, url, ids], { stdio: ['pipe', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (line) => {
      process.stdout.write(`  worker: ${line}`)
      resolve(child)
    })
    child.on('exit', (code) => reject(new Error(`worker ${ids} exited with code ${code}`)))
  })
}

let happen
try {
  happen = await initializeHappen({ transport: { type: 'nats', servers: [url] } })
} catch (error) {
  console.error(`${error.message}\nStart a server first: nats-server -a 127.0.0.1 -p 4222`)
  process.exit(1)
}
const workers = await Promise.all([start('payment-node'), start('inventory-node,shipping-node')])

const orderNode = happen.createNode('order-node')
orderNode.on('verify-order', (event, context) => ({ node: context.node.id, pid: process.pid, ok: true }))
orderNode.on('stock-reserved', (event, context) => {
  console.log(
    `order-node heard stock-reserved for ${event.payload.sku} from ${context.causal.sender}` +
      ` (caused by ${context.causal.causationId}, path ${context.causal.path.join(' -> ')})`,
  )
  return 'noted'
})
await happen.ready()

// Local and remote nodes in one array: remote ones are handles by id.
const nodes = createNodeArray([
  orderNode,
  happen.node('payment-node'),
  happen.node('inventory-node'),
  happen.node('shipping-node'),
])
const sent = await nodes.send({ type: 'verify-order', payload: { sku: 'A-42', quantity: 3 } })
const results = await sent.return()
console.log('\nresults by node:')
for (const [id, value] of Object.entries(results)) console.log(`  ${id.padEnd(15)} ${JSON.stringify(value)}`)

console.log("\ncausal trace (this process's view; remote branches carry their steps and outcome):")
console.log(String(happen.trace(sent.id)))

for (const child of workers) child.stdin.end()
await happen.shutdown()
