// A child process hosting happen nodes over NATS whose memory a test can read.
//   node probe-host.mjs <url> <node ids, comma-separated>
// Prints "ready"; then answers each line on stdin: "heap" with
// `heap <bytes used after GC> <remote handles> <broadcast reach> <sender handles>`.
import v8 from 'node:v8'
import vm from 'node:vm'
import { initializeHappen, createNodeArray } from '../../index.mjs'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')
const [url, ids] = process.argv.slice(2)
const happen = await initializeHappen({ transport: { type: 'nats', servers: [url], heartbeat: 200 } })
const nodes = createNodeArray(ids.split(',').map((id) => happen.createNode(id)))
nodes.on('echo', (event, context) => ({ by: context.node.id, payload: event.payload }))
const transport = happen._transports.find((t) => t.type === 'nats')

process.stdin.setEncoding('utf8')
let buffered = ''
process.stdin.on('data', (chunk) => {
  buffered += chunk
  for (let cut = buffered.indexOf('\n'); cut >= 0; cut = buffered.indexOf('\n')) {
    const line = buffered.slice(0, cut)
    buffered = buffered.slice(cut + 1)
    if (line === 'heap') {
      for (let i = 0; i < 3; i++) gc()
      const used = process.memoryUsage().heapUsed
      const { remotes, senders } = transport
      process.stdout.write(`heap ${used} ${remotes.size} ${transport.everyone().length} ${senders.handles.size}\n`)
    }
  }
})
process.stdin.on('end', async () => {
  await happen.shutdown()
  process.exit(0)
})
await happen.ready()
process.stdout.write('ready\n')
