// Worker-thread nodes: CPU-heavy handlers of different nodes run in parallel threads, with the
// same API, results keyed by id, and one causal history.
//   node examples/workers/main.mjs
import { createNode, createNodeArray, node, trace, shutdown, worker } from 'happen'

const images = new URL('./images.mjs', import.meta.url)
// Two threads, two nodes each (what a 2-core machine runs in parallel).
await worker(images, { workerData: { ids: ['thumbs-1', 'thumbs-2'] }, name: 'images-a' })
await worker(images, { workerData: { ids: ['thumbs-3', 'thumbs-4'] }, name: 'images-b' })

// A main-thread node the workers report back to.
const catalog = createNode('catalog')
const published = []
catalog.on('thumbnail-ready', (event, context) => {
  published.push(`${event.payload.image} by ${context.causal.sender}`)
  return 'listed'
})

const resizers = createNodeArray(['thumbs-1', 'thumbs-2', 'thumbs-3', 'thumbs-4'].map((id) => node(id)))
const started = performance.now()
const sent = await resizers.send({
  type: 'resize',
  payload: { image: 'cat.png', pixels: new Uint8Array(256 * 1024).fill(7), sizes: new Map([['small', 64]]) },
})
const results = await sent.return()
console.log(`4 resizes in ${(performance.now() - started).toFixed(1)} ms:`)
for (const [id, result] of Object.entries(results))
  console.log(`  ${id}: checksum ${result.checksum} on thread ${result.threadId}`)
console.log(`catalog saw: ${published.join('; ')}`)
console.log(String(trace(sent.id)))
await shutdown()
