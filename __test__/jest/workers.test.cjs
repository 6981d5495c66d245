// Worker-thread nodes under jest (issue 9): run with --detectOpenHandles (npm run test:jest);
// after shutdown() no worker, port or thread-safe function is left open, so jest reports no
// open handle and exits by itself.
const path = require('node:path')
const { pathToFileURL } = require('node:url')
const { initializeHappen } = require('../../index.js')

const cruncher = pathToFileURL(path.join(__dirname, '../fixtures/workers/cruncher.mjs'))

test('a fan-out over main-thread and worker nodes, then shutdown() leaves nothing open', async () => {
  const rt = initializeHappen()
  const main = rt.createNode('main')
  main.on('crunch', () => 'main')
  const worker = await rt.worker(cruncher, { workerData: { prefix: 'j', nodes: ['1', '2'] } })
  const results = await rt
    .createNodeArray([main, rt.node('j-1'), rt.node('j-2')])
    .send({ type: 'crunch', payload: 1 })
    .return()
  expect(results.main).toBe('main')
  expect(results['j-1'].threadId).toBe(worker.threadId)
  expect(results['j-2'].by).toBe('j-2')
  const pending = rt.node('j-1').send({ type: 'slow', payload: { ms: 5000 } })
  await rt.shutdown()
  await expect(pending.return()).rejects.toMatchObject({ code: 'HANDLER_FAILED' })
})
