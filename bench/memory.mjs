// Causal-history memory per event held.
//
//   node bench/memory.mjs [--events N]      (also run by bench/index.mjs at the end)
//
// Spawns two fresh child processes with --expose-gc (you need not pass it):
//   * "history": initializeHappen({ historySize: N }), then N one-event 5-node
//     fan-outs + return(), so the history holds N events;
//   * "control": the very same workload with historySize: 1.
// Each child measures process.memoryUsage() after global.gc() before and after
// the fill (and after a second fill of N more events, to show memory is flat
// once the store is full). Native (Rust) memory shows up in RSS, not in the V8
// heap, so the headline figure is RSS growth; the control run subtracts what
// the workload costs without a history (JIT code, allocator high-water marks).
//   bytes/event held = (ΔRSS(history) − ΔRSS(control)) / N
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const FANOUT = 5;
const IN_FLIGHT = 50; // fan-outs in flight while filling (keeps the fill fast)
const WARMUP = 2_000;

// ------------------------------------------------------------------ child

async function child(historySize, events) {
  const { initializeHappen } = await import('happen');
  const snap = () => {
    globalThis.gc(); globalThis.gc();
    const m = process.memoryUsage();
    return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
  };
  const rt = initializeHappen({ historySize });
  const nodes = rt.createNodeArray(Array.from({ length: FANOUT }, (_, i) => rt.createNode(`n${i}`)));
  nodes.on('update', (_e, ctx) => ({ ok: true, node: ctx.node.id }));
  const fill = async (n) => {
    for (let done = 0; done < n; done += IN_FLIGHT) {
      const k = Math.min(IN_FLIGHT, n - done);
      const ps = new Array(k);
      for (let i = 0; i < k; i++) ps[i] = nodes.send({ type: 'update', payload: { data: done + i } }).return();
      await Promise.all(ps);
    }
  };
  await fill(WARMUP); // JIT, allocator and runtime threads warm; held: min(H, WARMUP)
  const before = snap();
  const t0 = performance.now();
  await fill(events);
  const fillSeconds = (performance.now() - t0) / 1000;
  const after = snap();
  await fill(events);
  const again = snap();
  await rt.shutdown();
  const shutdown = snap();
  return {
    historySize, events, fillSeconds,
    heldBefore: Math.min(historySize, WARMUP),
    heldAfter: Math.min(historySize, WARMUP + events),
    before, after, again, shutdown,
  };
}

// ------------------------------------------------------------------ parent

function runChild(historySize, events) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', SELF, '--child', String(historySize), String(events)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { p.kill(); reject(new Error(`memory child (historySize ${historySize}) timed out after 120 s`)); }, 120_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop();
      try {
        const r = JSON.parse(last);
        if (r.error) reject(new Error(r.error)); else resolve(r);
      } catch {
        reject(new Error(`memory child exited ${code} without a result: ${out.slice(-500)}`));
      }
    });
  });
}

const delta = (r, key, a = 'before', b = 'after') => r[b][key] - r[a][key];

export async function runMemory({ events = 100_000 } = {}) {
  const started = performance.now();
  const history = await runChild(events, events);
  const control = await runChild(1, events);
  const held = history.heldAfter - history.heldBefore - (control.heldAfter - control.heldBefore);
  const per = (key) => (delta(history, key) - delta(control, key)) / held;
  const rssPerEvent = per('rss');
  const heapPerEvent = per('heapUsed');
  const externalPerEvent = per('external');
  return {
    events, fanOut: FANOUT, held,
    // headline: RSS holds both the V8 heap and native (Rust) memory
    bytesPerEvent: rssPerEvent,
    rssPerEvent, heapPerEvent, externalPerEvent,
    // RSS growth per event during a second fill of N events with a full store (should be ~0)
    flatRssPerEvent: delta(history, 'rss', 'after', 'again') / events,
    flatHeapPerEvent: delta(history, 'heapUsed', 'after', 'again') / events,
    releasedOnShutdownRss: -delta(history, 'rss', 'again', 'shutdown'),
    fillEventsPerSec: events / history.fillSeconds,
    seconds: (performance.now() - started) / 1000,
    history, control,
  };
}

const mb = (b) => `${(b / 1048576).toFixed(1)} MB`;
const bpe = (v) => `${Math.round(v)} B/event`;

export function printMemory(m) {
  console.log('\ncausal history memory (bench/memory.mjs)');
  if (m.error) { console.log(`  failed: ${m.error}`); return; }
  const h = m.history, c = m.control;
  console.log(`  ${m.events.toLocaleString('en-US')} one-event ${m.fanOut}-node fan-outs; historySize ${m.events.toLocaleString('en-US')} vs control historySize 1 (fresh processes, after gc)`);
  console.log(`  history run: RSS ${mb(h.before.rss)} -> ${mb(h.after.rss)}, heapUsed ${mb(h.before.heapUsed)} -> ${mb(h.after.heapUsed)}, external ${mb(h.before.external)} -> ${mb(h.after.external)}`);
  console.log(`  control run: RSS ${mb(c.before.rss)} -> ${mb(c.after.rss)}, heapUsed ${mb(c.before.heapUsed)} -> ${mb(c.after.heapUsed)}`);
  console.log(`  per event held: RSS ${bpe(m.rssPerEvent)} (headline), V8 heap ${bpe(m.heapPerEvent)}, external ${bpe(m.externalPerEvent)}`);
  console.log(`  store full, ${m.events.toLocaleString('en-US')} more events: RSS ${bpe(m.flatRssPerEvent)}, heap ${bpe(m.flatHeapPerEvent)} (flat = ~0); shutdown released ${mb(m.releasedOnShutdownRss)} RSS`);
  console.log(`  fill rate ${Math.round(m.fillEventsPerSec).toLocaleString('en-US')} fan-outs/s; ${m.seconds.toFixed(1)} s`);
}

// ------------------------------------------------------------------ entry

if (process.argv[1] === SELF) {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    if (typeof globalThis.gc !== 'function') {
      console.log(JSON.stringify({ error: 'run with --expose-gc' }));
    } else {
      try {
        console.log(JSON.stringify(await child(Number(argv[1]), Number(argv[2]))));
      } catch (err) {
        console.log(JSON.stringify({ error: `${err?.name}: ${err?.message}` }));
      }
    }
    // do not let a stray handle keep the child alive
    setTimeout(() => process.exit(0), 1000).unref();
  } else {
    const i = argv.indexOf('--events');
    const m = await runMemory({ events: i >= 0 ? Number(argv[i + 1]) : 100_000 });
    printMemory(m);
    if (argv.includes('--json')) console.log(JSON.stringify(m));
  }
}
