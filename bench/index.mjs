// happen benchmark: happen and its peers in one process, one table,
// bench/results.json. Run: `npm run bench` (node bench/index.mjs).
//
// Options (flags or env):
//   --quick            (BENCH_QUICK=1)   shorter sampling, for development
//   --filter <regex>   (BENCH_FILTER)    only scenarios whose id matches (e.g. 'S1|S6')
//   --no-memory        (BENCH_MEMORY=0)  skip bench/memory.mjs
//   --memory-events N  (BENCH_MEMORY_EVENTS) events held in the memory run (default 100000)
//
// Numbers are medians (p50) of mitata samples; ops/s = 1e9 / p50 ns
// (times events per op for the fan-in and throughput rows).
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { measure } from 'mitata';

import { fanOutPeers, fanInPeers, flowPeers, singlePeers, makeBatch, IN_FLIGHT } from './peers.mjs';
import {
  loadHappen, happenError, happenFanOut, happenFanIn, happenFlow, happenSingle,
} from './scenarios.mjs';
import { runMemory, printMemory } from './memory.mjs';

const SELF = fileURLToPath(import.meta.url);

// mitata calls gc() between benchmarks when it is exposed: re-run ourselves with it.
if (typeof globalThis.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, SELF, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const QUICK = flag('--quick') || process.env.BENCH_QUICK === '1';
const FILTER = new RegExp(opt('--filter') ?? process.env.BENCH_FILTER ?? '.*');
const MEMORY = !flag('--no-memory') && process.env.BENCH_MEMORY !== '0';
const MEMORY_EVENTS = Number(opt('--memory-events') ?? process.env.BENCH_MEMORY_EVENTS ?? 100_000);

// Sampling: ~0.5 s of samples per case (0.1 s with --quick), batches of 256
// calls per sample for sub-65µs ops so the slow-but-batched cases stay short.
const MEASURE = {
  min_cpu_time: (QUICK ? 100 : 500) * 1e6,
  batch_samples: 256,
  min_samples: QUICK ? 6 : 12,
};

const WARMUP_MS = QUICK ? 30 : 150;

// ------------------------------------------------------------------ checks

const isObj = (v) => v !== null && typeof v === 'object';
const keyedFanOut = (n) => (r) => {
  if (!isObj(r)) return `expected an object keyed by node id, got ${typeof r}`;
  const keys = Object.keys(r);
  if (keys.length !== n) return `expected ${n} keys, got ${keys.length}`;
  for (const k of keys) if (!isObj(r[k]) || r[k].ok !== true || r[k].node !== k) return `bad value under ${k}: ${JSON.stringify(r[k])}`;
  return null;
};
const batchResult = (size) => (r) =>
  isObj(r) && r.count === size && r.sum === (size * (size - 1)) / 2 ? null : `expected { count: ${size}, sum }, got ${short(r)}`;
const flowResult = (r) => (isObj(r) && r.done === true && r.node === 'flow' ? null : `expected { done: true, node: 'flow' }, got ${short(r)}`);
const singleResult = (r) => (isObj(r) && r.ok === true && r.node === 'single' ? null : `expected { ok: true, node: 'single' }, got ${short(r)}`);
const manyResults = (r) => (Array.isArray(r) && r.length === IN_FLIGHT && !singleResult(r[0]) ? null : `expected ${IN_FLIGHT} results, got ${short(r)}`);
function short(v) { try { const s = JSON.stringify(v); return s === undefined ? String(v) : s.length > 120 ? s.slice(0, 117) + '...' : s; } catch { return String(v); } }

// ------------------------------------------------------------------ scenarios

const merge = (...parts) => ({
  cases: parts.flatMap((p) => p.cases),
  teardown: async () => { for (const p of parts) await p.teardown?.(); },
});

const withHappen = async (makeHappen, makePeers) => {
  const parts = [];
  if (await loadHappen()) parts.push(makeHappen());
  parts.push(await makePeers());
  return merge(...parts);
};

const pick = (key) => (p) => ({ cases: p[key], teardown: p.teardown });

const SCENARIOS = [
  {
    id: 'S1', label: 'S1 fan-out 5', unit: 'op', perOp: 1,
    title: 'one event to 5 nodes + return(), results keyed by node',
    check: keyedFanOut(5),
    setup: () => withHappen(() => happenFanOut(5), () => fanOutPeers(5)),
  },
  {
    id: 'S2', label: 'S2 fan-out 50', unit: 'op', perOp: 1,
    title: 'one event to 50 nodes + return(), results keyed by node',
    check: keyedFanOut(50),
    setup: () => withHappen(() => happenFanOut(50), () => fanOutPeers(50)),
  },
  ...[10, 100, 1000].map((size) => ({
    id: `S3-${size}`, label: `S3 fan-in x${size}`, unit: 'ev', perOp: size,
    title: `batch of ${size} { type, payload } events to one node + return() (rate in events/s)`,
    check: batchResult(size),
    setup: () => {
      const batches = [[size, makeBatch(size)]];
      return withHappen(() => happenFanIn(batches), () => fanInPeers(batches));
    },
  })),
  {
    id: 'S4', label: 'S4 3-step flow', unit: 'op', perOp: 1,
    title: 'handler returns a next function twice, node.process()',
    check: flowResult,
    setup: () => withHappen(() => happenFlow(), () => flowPeers()),
  },
  {
    id: 'S5-seq', label: 'S5 1 event seq', unit: 'op', perOp: 1,
    title: 'one event to one node, awaited one at a time (latency)',
    check: singleResult,
    setup: async () => {
      const parts = [];
      if (await loadHappen()) parts.push(pick('seq')(happenSingle()));
      parts.push(pick('seq')(await singlePeers()));
      return merge(...parts);
    },
  },
  {
    id: 'S5-thr', label: `S5 ${IN_FLIGHT} in flight`, unit: 'ev', perOp: IN_FLIGHT,
    title: `one event to one node, ${IN_FLIGHT} in flight via Promise.all (rate in events/s)`,
    check: manyResults,
    setup: async () => {
      const parts = [];
      if (await loadHappen()) parts.push(pick('thr')(happenSingle()));
      parts.push(pick('thr')(await singlePeers()));
      return merge(...parts);
    },
  },
  {
    id: 'S6', label: 'S6 causality', unit: 'op', perOp: 1,
    title: 'S1 with causal history on (default historySize 10,000) vs historySize: 1',
    check: keyedFanOut(5),
    setup: async () => {
      if (!(await loadHappen())) return { cases: [], teardown() {} };
      const on = happenFanOut(5, undefined, 'happen');
      const off = happenFanOut(5, { historySize: 1 }, 'happen historySize: 1');
      off.cases[0].happen = false;
      return merge(on, off);
    },
  },
];

// ------------------------------------------------------------------ runner

// mitata warms up with 2 calls only; let the JIT settle on every case first.
async function warmup(fn) {
  const until = performance.now() + WARMUP_MS;
  let n = 0;
  while (n < 20 || performance.now() < until) {
    const r = fn();
    if (r instanceof Promise) await r;
    n++;
  }
}

async function runCase(scenario, c) {
  const row = { name: c.name, happen: !!c.happen };
  try {
    const problem = scenario.check(await c.fn());
    if (problem) row.checkFailed = problem;
  } catch (err) {
    row.error = `${err?.name ?? 'Error'}: ${err?.message ?? err}`;
    return row;
  }
  try {
    await warmup(c.fn);
    const stats = await measure(c.fn, { ...MEASURE });
    row.p50 = stats.p50;
    row.avg = stats.avg;
    row.p99 = stats.p99;
    row.samples = stats.samples.length;
    row.ticks = stats.ticks;
    row.nsPerOp = stats.p50;
    row.opsPerSec = (1e9 / stats.p50) * scenario.perOp;
  } catch (err) {
    row.error = `${err?.name ?? 'Error'}: ${err?.message ?? err}`;
  }
  return row;
}

async function runScenario(s) {
  const t0 = performance.now();
  const { cases, teardown } = await s.setup();
  const rows = [];
  for (const c of cases) {
    rows.push(await runCase(s, c));
    process.stderr.write('.');
  }
  await teardown();
  const happen = rows.find((r) => r.happen && r.opsPerSec);
  for (const r of rows) if (happen && r.opsPerSec) r.ratioToHappen = r.opsPerSec / happen.opsPerSec;
  return {
    id: s.id, label: s.label, title: s.title, unit: s.unit === 'ev' ? 'events/s' : 'ops/s', eventsPerOp: s.perOp,
    seconds: (performance.now() - t0) / 1000, rows,
  };
}

// ------------------------------------------------------------------ targets

function targets(results, memory) {
  const row = (id, name) => results.find((s) => s.id === id)?.rows.find((r) => r.name === name && r.opsPerSec);
  const out = [];
  const add = (id, text, value, ok, fmt) => out.push({ id, target: text, value: value ?? null, met: value == null ? null : ok(value), shown: value == null ? 'n/a' : fmt(value) });
  const x = (v) => `${v.toFixed(2)}x`;
  const rate = (id, a, b) => { const ra = row(id, a), rb = row(id, b); return ra && rb ? ra.opsPerSec / rb.opsPerSec : null; };
  const cost = (id, a, b) => { const ra = row(id, a), rb = row(id, b); return ra && rb ? ra.nsPerOp / rb.nsPerOp : null; };

  add('S1', 'S1 happen ops/s >= 2.5x moleculer mcall', rate('S1', 'happen', 'moleculer mcall'), (v) => v >= 2.5, x);
  add('S1', 'S1 happen time <= 2x async fns + Promise.all', cost('S1', 'happen', 'async fns + Promise.all'), (v) => v <= 2, x);
  add('S2', 'S2 happen ops/s >= 3x moleculer mcall', rate('S2', 'happen', 'moleculer mcall'), (v) => v >= 3, x);
  add('S2', 'S2 happen time <= 2x async fns + Promise.all', cost('S2', 'happen', 'async fns + Promise.all'), (v) => v <= 2, x);
  add('S3-1000', 'S3(1000) happen events/s >= 0.25x moleculer call(array)', rate('S3-1000', 'happen', 'moleculer call(array)'), (v) => v >= 0.25, x);
  add('S4', 'S4 happen time <= 3x hand-written async steps', cost('S4', 'happen', 'hand-written async steps'), (v) => v <= 3, x);
  add('S5-seq', 'S5 sequential happen time <= 2x plain await', cost('S5-seq', 'happen', 'plain await async fn'), (v) => v <= 2, x);
  const c6 = cost('S6', 'happen', 'happen historySize: 1');
  add('S6', 'S6 causal history costs <= 20% (default vs historySize 1)', c6 == null ? null : c6 - 1, (v) => v <= 0.2, (v) => `${(v * 100).toFixed(1)}%`);
  add('memory', 'history <= 200 bytes per event held', memory?.bytesPerEvent ?? null, (v) => v <= 200, (v) => `${Math.round(v)} B/event`);
  return out;
}

// ------------------------------------------------------------------ printing

const int = (v) => Math.round(v).toLocaleString('en-US');
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);

function printTable(results) {
  const W = [20, 26, 16, 14, 12];
  const line = (a, b, c, d, e) => console.log(`${pad(a, W[0])}${pad(b, W[1])}${lpad(c, W[2])}${lpad(d, W[3])}${lpad(e, W[4])}`);
  console.log();
  line('scenario', 'implementation', 'ops/s (p50)', 'ns/op (p50)', 'vs happen');
  console.log('-'.repeat(W.reduce((a, b) => a + b, 0)));
  for (const s of results) {
    s.rows.forEach((r, i) => {
      const label = i === 0 ? s.label : i === 1 && s.unit === 'events/s' ? '  (events/s)' : '';
      if (r.error) return line(label, r.name, 'ERROR', '', '');
      line(label, r.name + (r.checkFailed ? ' (!)' : ''), int(r.opsPerSec), int(r.nsPerOp),
        r.ratioToHappen == null ? '' : `${r.ratioToHappen >= 10 ? r.ratioToHappen.toFixed(1) : r.ratioToHappen.toFixed(2)}x`);
    });
  }
  console.log('vs happen = implementation ops/s / happen ops/s (>1: faster than happen).');
  for (const s of results) for (const r of s.rows) {
    if (r.error) console.log(`  ${s.id} ${r.name}: ${r.error}`);
    if (r.checkFailed) console.log(`  (!) ${s.id} ${r.name}: result check failed: ${r.checkFailed}`);
  }
}

function printTargets(ts) {
  console.log('\ntargets (judged on p50)');
  for (const t of ts) {
    const verdict = t.met == null ? 'n/a' : t.met ? 'met' : 'NOT MET';
    console.log(`  ${pad(t.target, 62)}${lpad(t.shown, 14)}  ${verdict}`);
  }
}

// ------------------------------------------------------------------ main

const started = performance.now();
const happen = await loadHappen();
console.log(`happen bench — node ${process.version}, ${os.platform()} ${os.arch()}, ${os.cpus().length} CPU (${os.cpus()[0]?.model ?? '?'})${QUICK ? ', QUICK' : ''}`);
const load = os.loadavg()[0];
if (load > 0.7) console.log(`warning: load average ${load.toFixed(2)} at start: other work on this ${os.cpus().length}-CPU machine skews the numbers.`);
if (!happen) console.log(`happen did not load (${happenError()?.message?.split('\n')[0]}): peers only.`);
for (const s of SCENARIOS) console.log(`  ${pad(s.id, 8)}${s.title}`);

const results = [];
for (const s of SCENARIOS) {
  if (!FILTER.test(s.id)) continue;
  results.push(await runScenario(s));
}
process.stderr.write('\n');

let memory = null;
if (MEMORY && happen) {
  try {
    memory = await runMemory({ events: MEMORY_EVENTS });
  } catch (err) {
    memory = { error: String(err?.message ?? err) };
  }
}

const ts = targets(results, memory && !memory.error ? memory : null);
printTable(results);
if (memory) printMemory(memory);
printTargets(ts);

const seconds = (performance.now() - started) / 1000;
console.log(`\ntotal ${seconds.toFixed(1)} s; per scenario: ${results.map((s) => `${s.id} ${s.seconds.toFixed(1)}s`).join(', ')}`);

const json = {
  meta: {
    date: new Date().toISOString(),
    node: process.version, platform: `${os.platform()} ${os.arch()}`,
    cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? null,
    loadAverageAtStart: load, loadAverageAtEnd: os.loadavg()[0],
    quick: QUICK, filter: String(FILTER), seconds,
    happenLoaded: !!happen, happenError: happen ? null : String(happenError()?.message ?? ''),
    statistic: 'p50 (median) of mitata samples; opsPerSec = 1e9 / p50 * eventsPerOp',
  },
  scenarios: results,
  memory,
  targets: ts,
};
writeFileSync(new URL('./results.json', import.meta.url), JSON.stringify(json, null, 2) + '\n');
console.log('wrote bench/results.json');

// happen must not keep the process alive (SPEC §1): say so if something does.
setTimeout(() => {
  console.error('note: the process did not exit by itself 3 s after the bench ended (an open handle keeps the event loop alive); exiting.');
  process.exit(0);
}, 3000).unref();
