// A child process hosting happen nodes over NATS whose memory a test can read.
//   node probe-host.mjs <url> <node ids, comma-separated>
// Prints "ready"; then answers each line on stdin: "heap" with
// `heap <bytes used after GC> <remote handles> <broadcast reach> <sender handles>`.
import { createInterface } from 'node:readline'
import v8 from 'node:v8'
import vm from 'node:vm'
import { initializeHappen, createNodeArray } from '../../index.mjs'
import { serveUntilStdinEnds } from './host-lifecycle.mjs'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')
const [url, ids] = process.argv.slice(2)
const happen = await initializeHappen({ transport: { type: 'nats', servers: [url], heartbeat: 200 } })
const nodes = createNodeArray(ids.split(',').map((id) => happen.createNode(id)))
nodes.on('echo', (event, context) => ({ by: context.node.id, payload: event.payload }))
const transport = happen._transports.find((t) => t.type === 'nats')

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line !== 'heap') return
  for (let i = 0; i < 3; i++) gc()
  const used = process.memoryUsage().heapUsed
  const { remotes, senders } = transport
  process.stdout.write(`heap ${used} ${remotes.size} ${transport.everyone().length} ${senders.handles.size}\n`)
})
await serveUntilStdinEnds(happen)
