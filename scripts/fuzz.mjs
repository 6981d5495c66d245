#!/usr/bin/env node
// `npm run fuzz`: the property tests at fuzzing strength. HAPPEN_FUZZ_RUNS (default 100,000)
// scenarios of the vitest model test (__test__/property.test.mjs) and cases of each Rust
// pattern property (src/core/pattern_proptests.rs). HAPPEN_FUZZ_SEED replays a vitest run.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const runs = process.env.HAPPEN_FUZZ_RUNS || '100000'
const env = { ...process.env, HAPPEN_FUZZ_RUNS: runs }
const steps = [
  [
    'vitest',
    [path.join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '__test__/property.test.mjs'],
    process.execPath,
  ],
  ['cargo proptest', ['test', '--lib', '--quiet', 'proptests'], process.env.CARGO || 'cargo'],
]
console.log(`happen fuzz: ${runs} runs per property`)
for (const [name, args, command] of steps) {
  const started = Date.now()
  const run = spawnSync(command, args, { cwd: root, env, stdio: 'inherit' })
  if (run.status !== 0) {
    console.error(`happen fuzz: ${name} failed`)
    process.exit(run.status ?? 1)
  }
  console.log(
    `happen fuzz: ${name} passed ${runs} runs per property in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  )
}
