// Runs in a worker thread (started by main.mjs): the nodes named in workerData, written exactly
// as on the main thread. Their handlers run here, in parallel with the other threads.
import { threadId, workerData } from 'node:worker_threads'
import { createNode } from 'happen'

for (const id of workerData.ids) {
  const resizer = createNode(id)
  resizer.on('resize', function resize(event, context) {
    // Stand-in for real image work: about 20 ms of CPU over the pixels.
    let checksum = 0
    for (let round = 0; round < 8; round++) {
      for (let i = 0; i < event.payload.pixels.length; i += 16)
        checksum = (checksum * 31 + event.payload.pixels[i] + round) >>> 0
    }
    // The next step tells a main-thread node, caused by this event.
    return async function announce() {
      await context.node.send('catalog', { type: 'thumbnail-ready', payload: { image: event.payload.image } }).return()
      return { checksum, threadId }
    }
  })
}
