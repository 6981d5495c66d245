// Bytes allocated per operation: the growth of the V8 heap over a run of operations between
// two collections, retried (with fewer operations) when a collection happened during the run.
// Every implementation is measured by the same loop (one `await` per operation), so the loop's
// own allocation (~100 B per awaited op) is in every figure alike.
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

let collections = 0;
const observer = new PerformanceObserver((list) => { collections += list.getEntries().length; });
observer.observe({ entryTypes: ['gc'] });

const settle = () => new Promise((resolve) => setImmediate(resolve));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };

export async function bytesPerOp(fn, ops = 2000) {
  if (typeof globalThis.gc !== 'function') return null;
  const samples = [];
  for (let attempt = 0; attempt < 8 && samples.length < 3; attempt++) {
    globalThis.gc();
    await settle();
    const before = collections;
    const start = v8.getHeapStatistics().used_heap_size;
    for (let i = 0; i < ops; i++) {
      const r = fn();
      if (r instanceof Promise) await r;
    }
    const end = v8.getHeapStatistics().used_heap_size;
    await settle();
    if (collections === before) samples.push((end - start) / ops);
    else ops = Math.max(50, ops >> 1);
  }
  return samples.length === 0 ? null : median(samples);
}

export function stopAllocObserver() {
  observer.disconnect();
}
