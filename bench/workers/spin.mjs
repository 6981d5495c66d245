// The CPU work every implementation of bench/workers.mjs does: spin for `ms` milliseconds.
export function spin(ms) {
  const end = performance.now() + ms
  let turns = 0
  while (performance.now() < end) turns++
  return turns > 0
}
