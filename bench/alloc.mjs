// Bytes allocated per operation: the growth of the V8 heap over a run of operations, counted
// only for runs no collection fell into (by the gc entries' times, which arrive late), less
// what the measuring loop itself allocates (the same loop awaiting a settled promise).
import { PerformanceObserver } from 'node:perf_hooks'
import v8 from 'node:v8'

const collections = []
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) collections.push(entry.startTime)
})
observer.observe({ entryTypes: ['gc'] })

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1]
}

async function grossBytesPerOp(fn, ops) {
  const samples = []
  for (let attempt = 0; attempt < 10 && samples.length < 3; attempt++) {
    globalThis.gc()
    await pause(1)
    const from = performance.now()
    const start = v8.getHeapStatistics().used_heap_size
    for (let i = 0; i < ops; i++) {
      const r = fn()
      if (r instanceof Promise) await r
    }
    const end = v8.getHeapStatistics().used_heap_size
    const to = performance.now()
    await pause(20) // the gc entries of the run arrive by then
    if (!collections.some((t) => t >= from && t <= to)) samples.push((end - start) / ops)
    else ops = Math.max(20, ops >> 1)
  }
  return samples.length === 0 ? null : median(samples)
}

let loopBytes = null
const settled = Promise.resolve()

/** Heap bytes one operation of `fn` allocates (null when every run saw a collection). */
export async function bytesPerOp(fn, ops = 2000) {
  if (typeof globalThis.gc !== 'function') return null
  if (loopBytes === null) loopBytes = (await grossBytesPerOp(() => settled, 2000)) ?? 0
  const gross = await grossBytesPerOp(fn, ops)
  return gross === null ? null : Math.max(0, gross - loopBytes)
}

export function stopAllocObserver() {
  observer.disconnect()
}
