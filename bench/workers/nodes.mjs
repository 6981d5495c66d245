// happen side of bench/workers.mjs: the nodes named in workerData.nodes, in this thread.
import { workerData } from 'node:worker_threads'
import { createNode } from 'happen'
import { spin } from './spin.mjs'

for (const id of workerData.nodes) {
  const node = createNode(id)
  node.on('spin', (event) => spin(event.payload.ms))
  node.on('echo', (event) => event.payload)
}
