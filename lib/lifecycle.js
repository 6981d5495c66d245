'use strict'

// Lifecycle helpers: what dispose() and shutdown() do so that a process creating and
// disposing nodes forever holds memory for the live ones only.

/**
 * Drops the empty entries at the end of a table indexed by the core's slot numbers. The core
 * trims its own tables the same way (src/core/registry.rs), so after a burst of nodes is
 * disposed neither side keeps an array sized for the burst. Amortised: each entry goes once.
 */
function trimTail(table) {
  let length = table.length
  if (length === 0 || table[length - 1] !== undefined) return
  while (length > 0 && table[length - 1] === undefined) length--
  table.length = length
}

module.exports = { trimTail }
