'use strict'

// The causal tree as the user gets it, linked up from the core's flat wire form
// (src/core/trace.rs `Trace::to_wire`). Nothing here recurses over the tree, so a chain of
// any depth (10,000 hops and more) is built, printed and exported without overflowing the
// stack: `String(tree)` is the core's text, and a tree deeper than JSON.stringify can walk
// exports through an iterative writer (JSON.rawJSON, Node 21+).

/** Past this many events deep, JSON.stringify of the nested tree would overflow V8's stack. */
const STRINGIFY_SAFE_DEPTH = 256

/** The tree from the core's wire text: one root event, or `{ correlationId, children }`. */
function treeFromWire(json) {
  const { events, links, correlationId, text } = JSON.parse(json)
  const roots = []
  const depths = new Array(events.length)
  let deepest = 0
  for (let i = 0; i < events.length; i++) {
    const event = events[i]
    for (const branch of event.branches) branch.children = []
    event.children = []
    const parent = links[2 * i]
    const branch = links[2 * i + 1]
    if (parent < 0) {
      roots.push(event)
      depths[i] = 0
      continue
    }
    const parentEvent = events[parent]
    ;(branch < 0 ? parentEvent : parentEvent.branches[branch]).children.push(event)
    depths[i] = depths[parent] + 1
    if (depths[i] > deepest) deepest = depths[i]
  }
  const tree = roots.length === 1 ? roots[0] : { correlationId, children: roots }
  Object.defineProperty(tree, 'toString', { value: () => text })
  if (deepest > STRINGIFY_SAFE_DEPTH && typeof JSON.rawJSON === 'function') {
    Object.defineProperty(tree, 'toJSON', { value: () => JSON.rawJSON(writeJson(tree)) })
  }
  return tree
}

/** JSON text of plain data (objects, arrays, primitives), written with an explicit stack. */
function writeJson(root) {
  const out = []
  // Each frame: the container, its keys (null for an array), the next position.
  const stack = [{ value: root, keys: Object.keys(root), at: 0 }]
  out.push('{')
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]
    const { value, keys } = frame
    const length = keys === null ? value.length : keys.length
    if (frame.at === length) {
      out.push(keys === null ? ']' : '}')
      stack.pop()
      continue
    }
    const at = frame.at++
    let item = keys === null ? value[at] : value[keys[at]]
    if (keys !== null && (item === undefined || typeof item === 'function')) continue
    if (out[out.length - 1] !== '{' && out[out.length - 1] !== '[') out.push(',')
    if (keys !== null) out.push(JSON.stringify(keys[at]), ':')
    if (item === undefined || typeof item === 'function') item = null
    if (item !== null && typeof item === 'object') {
      const array = Array.isArray(item)
      out.push(array ? '[' : '{')
      stack.push({ value: item, keys: array ? null : Object.keys(item), at: 0 })
    } else {
      out.push(JSON.stringify(item))
    }
  }
  return out.join('')
}

module.exports = { treeFromWire, writeJson }
