// SPEC §6 — keyed results hold every target id as an own key, in target order, also ids that
// are Object.prototype names.
import { describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'
import { rejection } from './helpers.mjs'

const IDS = ['__proto__', 'x', 'constructor', 'hasOwnProperty', 'toString']

function world() {
  const rt = initializeHappen()
  const nodes = IDS.map((id) => rt.createNode(id))
  return { rt, nodes, all: rt.createNodeArray(nodes) }
}

function expectOwnKeys(object, values) {
  expect(Object.getPrototypeOf(object)).toBe(Object.prototype)
  expect(Object.keys(object)).toEqual(IDS)
  IDS.forEach((id, i) => {
    expect(Object.getOwnPropertyDescriptor(object, id)?.value).toEqual(values[i])
  })
}

describe('keyed results with ids that are Object.prototype names', () => {
  it('return() holds __proto__ and constructor as own keys in target order', async () => {
    const { all } = world()
    all.on('v', (_, ctx) => ({ by: ctx.node.id }))
    const results = await all.send({ type: 'v' }).return()
    expectOwnKeys(
      results,
      IDS.map((id) => ({ by: id })),
    )
  })

  it('the settled form holds every id as an own key', async () => {
    const { all } = world()
    all.on('v', (_, ctx) => ctx.node.id)
    const entries = await all.send({ type: 'v' }).return({ settled: true })
    expectOwnKeys(
      entries,
      IDS.map((id) => ({ status: 'fulfilled', value: id })),
    )
  })

  it('HANDLER_FAILED .results and .errors hold every id as an own key', async () => {
    const { rt, nodes } = world()
    const fail = (id) => id === '__proto__' || id === 'constructor'
    for (const n of nodes)
      n.on('v', (_, ctx) => {
        if (fail(ctx.node.id)) throw new Error(`no ${ctx.node.id}`)
        return ctx.node.id
      })
    const error = await rejection(rt.createNodeArray(nodes).send({ type: 'v' }).return())
    expect(error.code).toBe('HANDLER_FAILED')
    expect(Object.keys(error.results)).toEqual(['x', 'hasOwnProperty', 'toString'])
    expect(Object.keys(error.errors)).toEqual(['__proto__', 'constructor'])
    expect(Object.getOwnPropertyDescriptor(error.errors, '__proto__').value.message).toBe('no __proto__')
    expect(Object.getPrototypeOf(error.errors)).toBe(Object.prototype)
  })

  it('the TIMEOUT error .results holds finished ids as own keys', async () => {
    const { rt, nodes } = world()
    for (const n of nodes) n.on('v', (_, ctx) => (ctx.node.id === 'x' ? new Promise(() => {}) : ctx.node.id))
    const error = await rejection(rt.createNodeArray(nodes).send({ type: 'v' }).return({ timeout: 5 }))
    expect(error.code).toBe('TIMEOUT')
    expect(Object.keys(error.results)).toEqual(['__proto__', 'constructor', 'hasOwnProperty', 'toString'])
    expect(Object.getOwnPropertyDescriptor(error.results, '__proto__').value).toBe('__proto__')
    expect(Object.getPrototypeOf(error.results)).toBe(Object.prototype)
  })

  it('NodeArray.process resolves to every id as an own key', async () => {
    const { all } = world()
    all.on('v', (_, ctx) => ctx.node.id.length)
    expectOwnKeys(
      await all.process({ type: 'v' }),
      IDS.map((id) => id.length),
    )
  })
})
