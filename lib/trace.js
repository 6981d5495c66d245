'use strict'

// The causal tree as the user gets it, linked up from the core's flat wire form
// (src/core/trace.rs `Trace::to_wire`). Nothing here recurses over the tree, so a chain of
// any depth (10,000 hops and more) is built and printed without overflowing the
// stack; `String(tree)` is the core's text. (JSON.stringify itself recurses: V8 exports a
// tree up to about 1,000 events deep.)

/** The tree from the core's wire text: one root event, or `{ correlationId, children }`. */
function treeFromWire(json) {
  const { events, links, correlationId, text } = JSON.parse(json)
  const roots = []
  for (let i = 0; i < events.length; i++) {
    const event = events[i]
    for (const branch of event.branches) branch.children = []
    event.children = []
    const parent = links[2 * i]
    const branch = links[2 * i + 1]
    if (parent < 0) {
      roots.push(event)
      continue
    }
    const parentEvent = events[parent]
    ;(branch < 0 ? parentEvent : parentEvent.branches[branch]).children.push(event)
  }
  const tree = roots.length === 1 ? roots[0] : { correlationId, children: roots }
  Object.defineProperty(tree, 'toString', { value: () => text })
  return tree
}

module.exports = { treeFromWire }
