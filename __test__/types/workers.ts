// Worker-thread nodes as a TypeScript user writes them (checked by `tsc --strict`).
import { initializeHappen, worker, node } from 'happen'

async function workers() {
  const runtime = initializeHappen()
  const handle = await runtime.worker(new URL('./resize.mjs', 'file:///app/'), {
    workerData: { size: 64 },
    name: 'resizer',
  })
  const id: number = handle.threadId
  const ids: string[] = handle.nodes
  await runtime.node(ids[0]).send({ type: 'resize', payload: { id } }).return()
  await handle.terminate()
  const other = await worker('./workers/hash.mjs')
  await node(other.nodes[0]).send({ type: 'hash' }).return({ timeout: 1000 })
  await worker('./w.mjs', { resourceLimits: { maxOldGenerationSizeMb: 64, stackSizeMb: 2 } })
  // @ts-expect-error: options are workerData, name and resourceLimits only
  await worker('./w.mjs', { argv: [] })
  // @ts-expect-error: resourceLimits are Node's four, in megabytes
  await worker('./w.mjs', { resourceLimits: { maxOldGenerationSizeMb: '64' } })
}
void workers
