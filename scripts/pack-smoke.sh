#!/usr/bin/env bash
# Packs happen, installs the tarball into an empty project, and runs the document's fan-out,
# fan-in and divergent-flow examples there under vitest (ESM) and jest (CJS, with
# --detectOpenHandles). Both runners must pass and exit by themselves. Then installs the same
# tarball without its prebuilt addon, so the install compiles it: the compile must say so
# and leave no build folder in node_modules/happen (HAPPEN_PACK_SKIP_COMPILE=1 skips this
# part, which takes a few minutes).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$root"
tarball="$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)"
echo "packed $(basename "$tarball") ($(du -h "$tarball" | cut -f1))"

mkdir -p "$work/app" && cd "$work/app"
npm init -y >/dev/null
npm install --no-audit --no-fund --prefer-offline "$tarball" vitest@^3.2.7 jest@^30.2.0 >/dev/null

cat > examples.js <<'JS'
// The document's examples, shared by the vitest and jest files below.
module.exports = (happen) => {
  const { initializeHappen } = happen
  const run = async () => {
    const { createNode, createNodeArray } = initializeHappen()
    const orderNode = createNode('order-node')
    const paymentNode = createNode('payment-node')
    const inventoryNode = createNode('inventory-node')
    const nodes = createNodeArray([orderNode, paymentNode, inventoryNode])
    nodes.on('update', (event, context) => ({ updated: true, by: context.node.id }))
    const fanOut = await (await nodes.send({ type: 'update', payload: { data: 'new data' } })).return()

    const node = createNode('analytics')
    node.on('data-point', (eventOrEvents, context) =>
      Array.isArray(eventOrEvents)
        ? { batch: eventOrEvents.map((e) => e.payload.value), causes: context.events.map((e) => e.causal.causationId) }
        : { single: eventOrEvents.payload.value })
    const fanIn = await node.process([
      { type: 'data-point', payload: { value: 10 } },
      { type: 'data-point', payload: { value: 20 } },
      { type: 'data-point', payload: { value: 30 } },
    ])

    const updateOrderRecord = () => 'order'
    const updateInventoryLevels = async () => 'inventory'
    const sendNotifications = () => 'notification'
    nodes.on('order-updated', (event, context) => {
      const nodeId = context.node.id
      if (nodeId === 'order-node') return updateOrderRecord
      else if (nodeId === 'inventory-node') return updateInventoryLevels
      return sendNotifications
    })
    const divergent = await nodes.send({ type: 'order-updated', payload: {} }).return()
    return { fanOut, fanIn, divergent }
  }
  return run
}
JS

cat > expectations.js <<'JS'
module.exports = (expect, results) => {
  expect(results.fanOut).toEqual({
    'order-node': { updated: true, by: 'order-node' },
    'payment-node': { updated: true, by: 'payment-node' },
    'inventory-node': { updated: true, by: 'inventory-node' },
  })
  expect(results.fanIn).toEqual({ batch: [10, 20, 30], causes: [null, null, null] })
  expect(results.divergent).toEqual({ 'order-node': 'order', 'payment-node': 'notification', 'inventory-node': 'inventory' })
}
JS

cat > vitest.test.mjs <<'JS'
import { test, expect } from 'vitest'
import * as happen from 'happen'
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
test('the document examples run from the installed tarball (ESM)', async () => {
  require('./expectations.js')(expect, await require('./examples.js')(happen)())
})
JS

cat > jest.test.js <<'JS'
const happen = require('happen')
test('the document examples run from the installed tarball (CJS)', async () => {
  require('./expectations.js')(expect, await require('./examples.js')(happen)())
})
JS

echo "--- vitest"
timeout 120 npx vitest run vitest.test.mjs
echo "--- jest --detectOpenHandles"
timeout 120 npx jest --detectOpenHandles --testMatch '**/jest.test.js' 2>&1 | tee jest.log
if grep -qiE 'open handle|did not exit' jest.log; then echo "jest reported open handles"; exit 1; fi
echo "--- a plain script exits by itself"
timeout 20 node -e "require('./examples.js')(require('happen'))().then(() => console.log('script done'))"

if [ "${HAPPEN_PACK_SKIP_COMPILE:-}" = "1" ]; then echo "pack smoke: ok (compile from source skipped)"; exit 0; fi
echo "--- installed without a prebuilt addon: compiles, leaves no build folder"
mkdir -p "$work/unpacked" && tar xzf "$tarball" -C "$work/unpacked"
rm -f "$work/unpacked/package/"*.node
tar czf "$work/happen-source.tgz" -C "$work/unpacked" package
mkdir -p "$work/source-app" && cd "$work/source-app"
npm init -y >/dev/null
# npm 11 skips dependencies' install scripts until approved; older npm runs them at install.
npm install --no-audit --no-fund --prefer-offline --foreground-scripts "$work/happen-source.tgz" 2>&1 | tee install.log
if ! node -e "require('happen')" 2>/dev/null; then
  npm install-scripts approve happen
  npm rebuild happen --foreground-scripts 2>&1 | tee -a install.log
fi
grep -q "happen: compiling the native addon" install.log || { echo "the compile did not say so"; exit 1; }
grep -q "about 2 minutes" install.log || { echo "the compile did not say how long it takes"; exit 1; }
grep -qE "Compiling happen v" install.log || { echo "cargo's progress was not shown"; exit 1; }
if [ -e node_modules/happen/target ]; then echo "node_modules/happen/target was left behind ($(du -sh node_modules/happen/target | cut -f1))"; exit 1; fi
ls node_modules/happen/*.node
node -e "const { createNode } = require('happen'); createNode('n').on('x', () => 'ok'); require('happen').node('n').process({ type: 'x' }).then((v) => { if (v !== 'ok') process.exit(1); console.log('compiled addon works') })"
echo "pack smoke: ok"
