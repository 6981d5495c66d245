// SPEC §2 — Runtime and nodes.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, vi } from 'vitest'
import { HappenError, createNode, createNodeArray, initializeHappen, node as topNode, trace as topTrace } from 'happen'
import { thrown } from './helpers.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** The error a call fails with, whether it throws synchronously or returns a rejected promise. */
async function failure(fn) {
  try {
    await fn()
  } catch (error) {
    return error
  }
  throw new Error('expected the call to fail')
}

function expectHappenError(error, code) {
  expect(error).toBeInstanceOf(HappenError)
  expect(error).toBeInstanceOf(Error)
  expect(error.name).toBe('HappenError')
  expect(error.code).toBe(code)
}

describe('§2 initializeHappen', () => {
  it('returns a runtime synchronously', () => {
    const rt = initializeHappen()
    for (const key of ['createNode', 'createNodeArray', 'node', 'trace', 'shutdown']) {
      expect(typeof rt[key], key).toBe('function')
    }
  })

  it('can also be awaited', async () => {
    const rt = await initializeHappen()
    const n = rt.createNode('awaited')
    n.on('x', () => 'ok')
    expect(await n.process({ type: 'x' })).toBe('ok')
  })

  it('defaults to the in-process memory transport and accepts it explicitly', async () => {
    const rt = initializeHappen({ transport: { type: 'memory' } })
    const a = rt.createNode('a')
    const b = rt.createNode('b')
    b.on('x', (event) => event.context.causal.sender)
    expect(await a.send(b, { type: 'x' }).return()).toBe('a')
  })

  it('each runtime has its own nodes', () => {
    const one = initializeHappen()
    const two = initializeHappen()
    const a1 = one.createNode('same-id')
    const a2 = two.createNode('same-id')
    expect(a1).not.toBe(a2)
    expect(one.node('same-id')).toBe(a1)
    expect(two.node('same-id')).toBe(a2)
  })
})

describe('§2 top-level createNode / createNodeArray use a default runtime', () => {
  it('a node created at top level is reachable via the top-level node() and trace()', async () => {
    const a = createNode('spec2-top-a')
    const b = createNode('spec2-top-b')
    expect(topNode('spec2-top-a')).toBe(a)
    const nodes = createNodeArray([a, b])
    nodes.on('hi', (event, context) => context.node.id)
    const result = await nodes.send({ type: 'hi' })
    expect(await result.return()).toEqual({ 'spec2-top-a': 'spec2-top-a', 'spec2-top-b': 'spec2-top-b' })
    expect(topTrace(result.id)).toMatchObject({ id: result.id, type: 'hi' })
  })

  it('nodes of the default runtime and of another runtime do not mix', () => {
    createNode('spec2-default-only')
    const rt = initializeHappen()
    expect(thrown(() => rt.node('spec2-default-only')).code).toBe('UNKNOWN_NODE')
  })
})

describe('§2 createNode(id)', () => {
  it('exposes the id as node.id and node.getId()', () => {
    const rt = initializeHappen()
    const n = rt.createNode('order-node')
    expect(n.id).toBe('order-node')
    expect(n.getId()).toBe('order-node')
  })

  it.each([
    ['an empty string', ''],
    ['a number', 42],
    ['undefined', undefined],
    ['null', null],
    ['an object', { id: 'x' }],
  ])('rejects %s as id with a TypeError', (_label, id) => {
    const rt = initializeHappen()
    expect(() => rt.createNode(id)).toThrow(TypeError)
  })

  it('a second node with the same id in one runtime is a DUPLICATE_NODE error', async () => {
    const rt = initializeHappen()
    const first = rt.createNode('dup')
    const seen = vi.fn()
    first.on('*', seen)
    const error = thrown(() => rt.createNode('dup'))
    expectHappenError(error, 'DUPLICATE_NODE')
    expect(error.message).toContain('dup')
    // The first node is untouched.
    expect(rt.node('dup')).toBe(first)
    await first.process({ type: 'still-here' })
    expect(seen).toHaveBeenCalledTimes(1)
  })

  it('the top-level createNode also refuses duplicates', () => {
    createNode('spec2-dup-top')
    expectHappenError(
      thrown(() => createNode('spec2-dup-top')),
      'DUPLICATE_NODE',
    )
  })
})

describe('§2 runtime.node(id)', () => {
  it('returns the local node itself', () => {
    const rt = initializeHappen()
    const n = rt.createNode('local')
    expect(rt.node('local')).toBe(n)
  })

  it('an unknown id is an UNKNOWN_NODE error', () => {
    const rt = initializeHappen()
    expectHappenError(
      thrown(() => rt.node('nobody')),
      'UNKNOWN_NODE',
    )
  })
})

describe('§2 configuration is validated', () => {
  it.each([
    ['historySize', { historySize: '100' }],
    ['historySize', { historySize: true }],
    ['transport', { transport: 'memory' }],
    ['transport', { transport: 42 }],
  ])('a wrong type for %s is a TypeError naming it (%j)', (key, config) => {
    const error = thrown(() => initializeHappen(config))
    expect(error).toBeInstanceOf(TypeError)
    expect(error.message).toContain(key)
  })

  it.each([0, -1, 1.5, NaN, Infinity])('historySize %s is refused, naming the key', (historySize) => {
    const error = thrown(() => initializeHappen({ historySize }))
    expect(error instanceof TypeError || error instanceof RangeError).toBe(true)
    expect(error.message).toContain('historySize')
  })

  it('accepts a positive integer historySize', () => {
    expect(() => initializeHappen({ historySize: 1 })).not.toThrow()
    expect(() => initializeHappen({ historySize: 5000 })).not.toThrow()
  })

  it('an unknown transport type is refused, naming the key', () => {
    const error = thrown(() => initializeHappen({ transport: { type: 'carrier-pigeon' } }))
    expect(error instanceof TypeError || error instanceof RangeError).toBe(true)
    expect(error.message).toMatch(/transport/)
  })

  it.each([
    ['a string', 'nats://localhost:4222'],
    ['an array with a non-URL', ['not a url']],
    ['an array with a number', [4222]],
  ])('servers that is %s is refused, naming the key', (_label, servers) => {
    const error = thrown(() => initializeHappen({ transport: { type: 'nats', servers } }))
    expect(error instanceof TypeError || error instanceof RangeError).toBe(true)
    expect(error.message).toContain('servers')
  })

  it('a config that is not an object is a TypeError', () => {
    expect(() => initializeHappen(42)).toThrow(TypeError)
    expect(() => initializeHappen('memory')).toThrow(TypeError)
  })
})

describe('§2 shutdown', () => {
  async function shutDownRuntime() {
    const rt = initializeHappen()
    const a = rt.createNode('a')
    const b = rt.createNode('b')
    const seen = vi.fn()
    a.on('*', seen)
    b.on('*', seen)
    const nodes = rt.createNodeArray([a, b])
    const done = rt.shutdown()
    expect(done).toBeInstanceOf(Promise)
    await done
    return { rt, a, b, nodes, seen }
  }

  async function expectShutdownError(fn) {
    const error = await failure(fn)
    expectHappenError(error, 'SHUTDOWN')
    expect(error.message).toMatch(/shut ?down/i)
  }

  it('afterwards createNode fails with SHUTDOWN', async () => {
    const { rt } = await shutDownRuntime()
    await expectShutdownError(() => rt.createNode('late'))
  })

  it('afterwards on fails with SHUTDOWN', async () => {
    const { a, nodes } = await shutDownRuntime()
    await expectShutdownError(() => a.on('x', () => {}))
    await expectShutdownError(() => nodes.on('x', () => {}))
  })

  it('afterwards send, process and broadcast fail with SHUTDOWN and deliver nothing', async () => {
    const { a, b, nodes, seen } = await shutDownRuntime()
    await expectShutdownError(() => a.send({ type: 'x' }))
    await expectShutdownError(() => a.send(b, { type: 'x' }))
    await expectShutdownError(() => a.send([{ type: 'x' }, { type: 'y' }]))
    await expectShutdownError(() => nodes.send({ type: 'x' }))
    await expectShutdownError(() => a.process({ type: 'x' }))
    await expectShutdownError(() => a.broadcast({ type: 'x' }))
    await new Promise((r) => setTimeout(r, 20))
    expect(seen).not.toHaveBeenCalled()
  })

  it('does not affect other runtimes', async () => {
    const other = initializeHappen()
    const n = other.createNode('survivor')
    n.on('x', () => 'alive')
    await shutDownRuntime()
    expect(await n.process({ type: 'x' })).toBe('alive')
  })

  it('the top-level shutdown ends the default runtime', () => {
    const script = `
      import { createNode, shutdown } from 'happen';
      const n = createNode('before');
      n.on('x', () => 1);
      await shutdown();
      let code = 'none';
      try { createNode('after'); } catch (e) { code = e.code; }
      let sendCode = 'none';
      try { await n.send({ type: 'x' }); } catch (e) { sendCode = e.code; }
      console.log(code, sendCode);`
    const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root,
      timeout: 10_000,
      encoding: 'utf8',
    })
    expect(res.signal, res.stderr).toBeNull()
    expect(res.status, res.stderr).toBe(0)
    expect(res.stdout.trim()).toBe('SHUTDOWN SHUTDOWN')
  })
})
