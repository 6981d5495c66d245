// SPEC §1 — Package: ESM + CJS entry points, shipped types, install contents,
// and a process that used happen exits by itself.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import * as happen from 'happen'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const EXPORTS = ['initializeHappen', 'createNode', 'createNodeArray', 'trace', 'node', 'shutdown', 'HappenError']

/** Run a node script in a child process (cwd = repo root, so 'happen' is the package itself). */
function runNode(args, { timeout = 10_000, cwd = root } = {}) {
  const res = spawnSync(process.execPath, args, { cwd, timeout, encoding: 'utf8' })
  return { ...res, killed: res.signal !== null || res.error?.code === 'ETIMEDOUT' }
}

/** Assert the child exited by itself, successfully, and return its stdout. */
function expectCleanExit(res) {
  expect(res.killed, `child was killed (did not exit by itself)\n${res.stderr}`).toBe(false)
  expect(res.status, res.stderr).toBe(0)
  return res.stdout.trim()
}

/** Exercise the API end to end; works with a `happen` module object in scope. */
const WORKLOAD = `
  const rt = happen.initializeHappen();
  const a = rt.createNode('a'), b = rt.createNode('b'), c = rt.createNode('c');
  const nodes = rt.createNodeArray([a, b]);
  nodes.on('ping', async (event, context) => {
    await new Promise((r) => setTimeout(r, 5));
    await c.send({ type: 'pong', payload: context.node.id });
    return context.node.id;
  });
  c.on('pong', (e) => (Array.isArray(e) ? e.map((x) => x.payload) : e.payload));
  c.on('never', () => 'registered but never triggered');
  const result = await nodes.send({ type: 'ping' });
  const fanOut = await result.return();
  const batch = await c.process([{ type: 'pong', payload: 1 }, { type: 'pong', payload: 2 }]);
  const tree = rt.trace(result.id);
  const top = happen.createNode('top-level');
  top.on('x', () => 'default runtime');
  const fromTop = await top.process({ type: 'x' });
  console.log(JSON.stringify({ fanOut, batch: Array.isArray(batch) ? 'array' : typeof batch, branches: tree.branches.length, fromTop }));
`
const EXPECTED_OUTPUT = { fanOut: { a: 'a', b: 'b' }, branches: 2, fromTop: 'default runtime' }

describe('§1 ESM entry point', () => {
  it('`import ... from "happen"` exposes the documented exports', () => {
    for (const name of EXPORTS) expect(typeof happen[name], name).toBe('function')
    expect(typeof happen.createNodeArray).toBe('function')
  })

  it('works end to end under vitest', async () => {
    const rt = happen.initializeHappen()
    const node = rt.createNode('esm')
    node.on('hello', (event) => `hello ${event.payload}`)
    expect(await node.process({ type: 'hello', payload: 'esm' })).toBe('hello esm')
  })
})

describe('§1 CommonJS entry point', () => {
  it('require of index.js and of the package root expose the same exports', () => {
    for (const spec of ['../index.js', root]) {
      const cjs = require(spec)
      for (const name of EXPORTS) expect(typeof cjs[name], `${spec}: ${name}`).toBe('function')
    }
  })

  it('works end to end through require', async () => {
    const { initializeHappen } = require(root)
    const rt = initializeHappen()
    const node = rt.createNode('cjs')
    node.on('hello', (event) => `hello ${event.payload}`)
    expect(await node.process({ type: 'hello', payload: 'cjs' })).toBe('hello cjs')
  })

  it('ESM and CommonJS share one default runtime (no dual-package split)', () => {
    // In plain Node, as a user's app mixing import and require would run.
    const script = `
      import { createRequire } from 'node:module';
      import { createNode } from 'happen';
      const cjs = createRequire(process.cwd() + '/')('happen');
      const created = createNode('shared-default');
      let duplicate = 'none';
      try { cjs.createNode('shared-default'); } catch (e) { duplicate = e.code; }
      console.log(cjs.node('shared-default') === created, duplicate);`
    const out = expectCleanExit(runNode(['--input-type=module', '-e', script]))
    expect(out).toBe('true DUPLICATE_NODE')
  })

  it('`require("happen")` resolves by package name', () => {
    const res = runNode(['-e', `const { createNodeArray } = require('happen'); console.log(typeof createNodeArray)`])
    expect(expectCleanExit(res)).toBe('function')
  })
})

describe('§1 a process that used happen exits by itself', () => {
  it('CommonJS script, no shutdown call', () => {
    const script = `const happen = require('happen'); (async () => { ${WORKLOAD} })().catch((e) => { console.error(e); process.exit(1); });`
    const out = expectCleanExit(runNode(['-e', script]))
    expect(JSON.parse(out)).toMatchObject({ ...EXPECTED_OUTPUT, batch: 'array' })
  })

  it('ESM script, no shutdown call', () => {
    const script = `import * as happen from 'happen'; ${WORKLOAD}`
    const out = expectCleanExit(runNode(['--input-type=module', '-e', script]))
    expect(JSON.parse(out)).toMatchObject({ ...EXPECTED_OUTPUT, batch: 'array' })
  })

  it('a script that only creates nodes and registers handlers', () => {
    const script = `
      const { initializeHappen, createNode } = require('happen');
      const rt = initializeHappen();
      rt.createNode('idle').on('*', () => 1);
      createNode('idle-top').on('x', () => 1);
      console.log('done');`
    expect(expectCleanExit(runNode(['-e', script]))).toBe('done')
  })

  it('a script that sends without awaiting any result', () => {
    const script = `
      const { initializeHappen } = require('happen');
      const rt = initializeHappen();
      const n = rt.createNode('fire');
      n.on('x', (e) => { console.log('handled', e.payload); });
      n.send({ type: 'x', payload: 1 });`
    expect(expectCleanExit(runNode(['-e', script]))).toBe('handled 1')
  })

  it('a script that shuts its runtime down', () => {
    const script = `
      const { initializeHappen } = require('happen');
      (async () => {
        const rt = initializeHappen();
        const n = rt.createNode('s');
        n.on('x', () => 2);
        const r = await n.process({ type: 'x' });
        await rt.shutdown();
        console.log(r);
      })();`
    expect(expectCleanExit(runNode(['-e', script]))).toBe('2')
  })
})

describe('§1 Jest', () => {
  // A user's project: happen installed under node_modules, a CommonJS jest test.
  function jestProject() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'happen-jest-'))
    fs.mkdirSync(path.join(dir, 'node_modules'))
    fs.symlinkSync(root, path.join(dir, 'node_modules', 'happen'), 'dir')
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'user-project', private: true }))
    fs.writeFileSync(
      path.join(dir, 'happen.test.js'),
      `const { createNodeArray, initializeHappen } = require('happen');
test('fan-out under jest', async () => {
  const rt = initializeHappen();
  const nodes = rt.createNodeArray([rt.createNode('a'), rt.createNode('b')]);
  nodes.on('ping', async (event, context) => context.node.id);
  const result = await nodes.send({ type: 'ping' });
  expect(await result.return()).toEqual({ a: 'a', b: 'b' });
  expect(typeof createNodeArray).toBe('function');
});
`,
    )
    return dir
  }

  function runJest(dir, extra) {
    const jestBin = require.resolve('jest/bin/jest')
    return spawnSync(process.execPath, [jestBin, '--rootDir', dir, '--ci', ...extra], {
      cwd: dir,
      timeout: 60_000,
      encoding: 'utf8',
    })
  }

  it('runs a test with require("happen"), exits, and reports no open handles', () => {
    const dir = jestProject()
    try {
      const plain = runJest(dir, [])
      const plainOut = plain.stdout + plain.stderr
      expect(plain.signal, plainOut).toBeNull()
      expect(plain.status, plainOut).toBe(0)
      expect(plainOut).not.toMatch(/did not exit/i)

      const detect = runJest(dir, ['--detectOpenHandles'])
      const detectOut = detect.stdout + detect.stderr
      expect(detect.signal, detectOut).toBeNull()
      expect(detect.status, detectOut).toBe(0)
      expect(detectOut).not.toMatch(/open handle/i)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})

describe('§1 types ship in index.d.ts', () => {
  it('package.json points "types" at index.d.ts, which exists', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
    expect(pkg.types).toMatch(/^(\.\/)?index\.d\.ts$/)
    expect(pkg.exports['.'].types).toMatch(/index\.d\.ts$/)
    expect(fs.existsSync(path.join(root, 'index.d.ts'))).toBe(true)
  })

  it('tsc --strict over the documented examples passes (npm run test:types)', () => {
    const tsc = require.resolve('typescript/bin/tsc')
    const res = spawnSync(process.execPath, [tsc, '-p', '__test__/types/tsconfig.json'], {
      cwd: root,
      timeout: 120_000,
      encoding: 'utf8',
    })
    expect(res.status, res.stdout + res.stderr).toBe(0)
  }, 120_000)
})

describe('§1 install from a tarball', () => {
  it('npm pack ships everything needed to compile the addon', () => {
    const res = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: root,
      timeout: 60_000,
      encoding: 'utf8',
    })
    expect(res.status, res.stderr).toBe(0)
    const [{ files }] = JSON.parse(res.stdout)
    const shipped = files.map((f) => f.path)
    for (const file of [
      'package.json',
      'index.js',
      'index.mjs',
      'index.d.ts',
      'Cargo.toml',
      'build.rs',
      'scripts/build-native.js',
    ]) {
      expect(shipped, file).toContain(file)
    }
    expect(shipped.some((f) => f.startsWith('src/') && f.endsWith('.rs'))).toBe(true)
    expect(shipped.some((f) => f.startsWith('lib/'))).toBe(true)

    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
    expect(pkg.scripts.install).toMatch(/build-native/)
  }, 60_000)
})
