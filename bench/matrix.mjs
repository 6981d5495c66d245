// `npm run bench:matrix`: the bench (bench/index.mjs) once per Node line, 20, 22 and 24
// (each installed by scripts/node-line.js when missing), one after the other, each writing
// bench/results-node<major>.json; then happen's same-run ratios side by side. Arguments are
// passed on to every run (e.g. --quick, --filter 'S1|S4').
//   BENCH_LINES=24,20  the lines to run (default 24,22,20: the judged one first)
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The binary of a Node line, installed into node_modules/.cache when missing (scripts/node-line.js). */
const nodeLine = (major) =>
  execFileSync(process.execPath, [fileURLToPath(new URL('../scripts/node-line.js', import.meta.url)), String(major)], {
    encoding: 'utf8',
  }).trim()

const lines = (process.env.BENCH_LINES ?? '24,22,20')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)
const index = fileURLToPath(new URL('./index.mjs', import.meta.url))
const summary = []
for (const major of lines) {
  const node = nodeLine(major)
  const out = `results-node${major}.json`
  console.log(`\n===== Node ${major} (${node})`)
  const run = spawnSync(node, [index, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_RESULTS: out },
  })
  if (run.status !== 0) {
    console.log(`Node ${major}: the bench exited with ${run.status}`)
    continue
  }
  summary.push({ major, results: JSON.parse(readFileSync(new URL(`./${out}`, import.meta.url), 'utf8')) })
}

console.log('\n===== targets per Node line (same-process ratios)')
const names = summary[0]?.results.targets.map((t) => t.target) ?? []
console.log(['target'.padEnd(60), ...summary.map((s) => `node ${s.major}`.padStart(16))].join(''))
for (const name of names) {
  const cells = summary.map((s) => {
    const t = s.results.targets.find((x) => x.target === name)
    return (t ? `${t.shown}${t.met === false ? ' NOT' : t.met ? ' met' : ''}` : '').padStart(16)
  })
  console.log([name.padEnd(60), ...cells].join(''))
}
