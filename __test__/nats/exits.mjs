// Exits by itself: waits for a remote result (the pending reply keeps the process alive),
// then leaves the runtime open, without shutdown(): nothing may hold the event loop.
import { initializeHappen } from '../../index.mjs'

const happen = await initializeHappen({ transport: { type: 'nats', servers: [process.argv[2]] } })
const a = happen.createNode('exits-a')
a.on('ping', () => 'pong')
await happen.ready()
console.log(await a.send('b1', { type: 'slow', payload: { ms: 300 } }).return())
