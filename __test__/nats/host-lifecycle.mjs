// The child's side of harness.mjs's spawnReady: print "ready" once the runtime's nodes are
// reachable, shut the runtime down and exit when stdin closes (the test ended).
export async function serveUntilStdinEnds(happen) {
  await happen.ready()
  process.stdout.write('ready\n')
  process.stdin.resume()
  process.stdin.on('end', async () => {
    await happen.shutdown()
    process.exit(0)
  })
}
