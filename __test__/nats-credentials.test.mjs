// Credentials in NATS server URLs (issue 21): `nats://user:pass@host` connects with that user
// and password, `nats://token@host` with that token, as the NATS clients read them; no error,
// message or NODE_DEBUG=happen line shows the password or token (`nats://user:***@host`,
// `nats://***@host`). Each test starts its own nats-server with the authorization it needs.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'
import { rejection, thrown } from './helpers.mjs'
import { freePort, hasNatsServer, spawnHost, startServer, stop, stopAll } from './nats/harness.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** A password the URL must percent-encode, and the way it is written there. */
const PASSWORD = 'p@ss/w:rd-7f3a'
const ENCODED = encodeURIComponent(PASSWORD)
const TOKEN = 'tok-5e1b9c0d'

/** A nats-server of its own with `authorization`, and its URL without credentials. */
async function serverWith(authorization) {
  const port = await freePort()
  const server = await startServer(port, [], `authorization { ${authorization} }\n`)
  return { server, host: `127.0.0.1:${port}` }
}

const natsConfig = (url) => ({ transport: { type: 'nats', servers: [url], heartbeat: 200 } })

/** Fails the test when `text` shows the password or the token, written any way. */
function expectNoSecret(text) {
  for (const secret of [PASSWORD, ENCODED, TOKEN, 'wrong-pass', 'wrong-token']) expect(text).not.toContain(secret)
}

/** Runs `code` (ESM, in this checkout) in a child process; resolves to its exit code, stdout and stderr. */
function runChild(code, env) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    cwd: root,
    env: { ...process.env, ...env },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  return new Promise((resolve) => child.on('exit', (status) => resolve({ status, stdout, stderr })))
}

describe.skipIf(!hasNatsServer)('NATS credentials in server URLs', () => {
  afterAll(() => stopAll())

  it('nats://user:pass@host connects with that user and password: a send round-trips to a host process started with the same URL', async () => {
    const { server, host } = await serverWith(`user: alice, password: ${JSON.stringify(PASSWORD)}`)
    const url = `nats://alice:${ENCODED}@${host}`
    const child = await spawnHost(url, ['cred-user-b'])
    const happen = await initializeHappen(natsConfig(url))
    try {
      const a = happen.createNode('cred-user-a')
      await happen.ready()
      const result = await a.send('cred-user-b', { type: 'echo', payload: 'over an authorised connection' }).return()
      expect(result).toMatchObject({ by: 'cred-user-b', payload: 'over an authorised connection' })
      expect(result.pid).toBe(child.pid)
    } finally {
      await happen.shutdown()
      await stop(child)
      await stop(server)
    }
  })

  it('nats://token@host connects with that token: a send round-trips to a host process started with the same URL', async () => {
    const { server, host } = await serverWith(`token: ${JSON.stringify(TOKEN)}`)
    const url = `nats://${TOKEN}@${host}`
    const child = await spawnHost(url, ['cred-token-b'])
    const happen = await initializeHappen(natsConfig(url))
    try {
      const a = happen.createNode('cred-token-a')
      await happen.ready()
      const result = await a.send('cred-token-b', { type: 'echo', payload: 1 }).return()
      expect(result).toMatchObject({ by: 'cred-token-b', payload: 1, pid: child.pid })
    } finally {
      await happen.shutdown()
      await stop(child)
      await stop(server)
    }
  })

  it('a wrong password fails fast with CONNECTION_FAILED, naming the server as nats://user:***@host', async () => {
    const { server, host } = await serverWith(`user: alice, password: ${JSON.stringify(PASSWORD)}`)
    try {
      const started = Date.now()
      const error = await rejection(Promise.resolve(initializeHappen(natsConfig(`nats://alice:wrong-pass@${host}`))))
      expect(Date.now() - started).toBeLessThan(3000)
      expect(error.code).toBe('CONNECTION_FAILED')
      expect(error.message).toContain(`nats://alice:***@${host}`)
      expect(error.message).toMatch(/authori[sz]ation/i)
      expectNoSecret(error.message)
    } finally {
      await stop(server)
    }
  })

  it('a wrong token fails fast with CONNECTION_FAILED, naming the server as nats://***@host', async () => {
    const { server, host } = await serverWith(`token: ${JSON.stringify(TOKEN)}`)
    try {
      const started = Date.now()
      const error = await rejection(Promise.resolve(initializeHappen(natsConfig(`nats://wrong-token@${host}`))))
      expect(Date.now() - started).toBeLessThan(3000)
      expect(error.code).toBe('CONNECTION_FAILED')
      expect(error.message).toContain(`nats://***@${host}`)
      expectNoSecret(error.message)
    } finally {
      await stop(server)
    }
  })

  it('NO_RESPONDERS names the servers redacted', async () => {
    const { server, host } = await serverWith(`token: ${JSON.stringify(TOKEN)}`)
    const happen = await initializeHappen({
      transport: { type: 'nats', servers: [`nats://${TOKEN}@${host}`, 'nats://127.0.0.1:1'] },
    })
    try {
      const a = happen.createNode('cred-lonely')
      await happen.ready()
      const error = await rejection(a.send('cred-nobody', { type: 'echo' }).return())
      const cause = error.errors['cred-nobody']
      expect(cause.code).toBe('NO_RESPONDERS')
      expect(cause.message).toContain(`no process connected to nats://***@${host}, nats://127.0.0.1:1 hosts it`)
      expectNoSecret(cause.message)
    } finally {
      await happen.shutdown()
      await stop(server)
    }
  })

  it('NODE_DEBUG=happen logs connections, sends and failures without a password or token', async () => {
    const users = await serverWith(`user: alice, password: ${JSON.stringify(PASSWORD)}`)
    const tokens = await serverWith(`token: ${JSON.stringify(TOKEN)}`)
    const code = `
      import { initializeHappen } from './index.mjs'
      const run = async (url) => {
        const happen = await initializeHappen({ transport: { type: 'nats', servers: [url] } })
        const a = happen.createNode('debug-a')
        await happen.ready()
        await a.send('debug-nobody', { type: 'ping' }).return().catch((e) => console.log(e.message))
        await happen.shutdown()
      }
      const fail = (url) => Promise.resolve().then(() => initializeHappen({ transport: { type: 'nats', servers: [url] } }))
        .then(() => console.log('connected?!'), (e) => console.log(e.code, e.message))
      await run(${JSON.stringify(`nats://alice:${ENCODED}@${users.host}`)})
      await run(${JSON.stringify(`nats://${TOKEN}@${tokens.host}`)})
      await fail(${JSON.stringify(`nats://alice:wrong-pass@${users.host}`)})
      await fail(${JSON.stringify(`nats://wrong-token@${tokens.host}`)})
    `
    try {
      const { status, stdout, stderr } = await runChild(code, { NODE_DEBUG: 'happen' })
      expect(status).toBe(0)
      // It did log what happened: the connections, the sends, the failures.
      expect(stderr).toMatch(/nats: connected/)
      expect(stderr).toMatch(/send 'ping'/)
      expect(stderr).toContain(`nats: failed cannot connect to NATS at nats://alice:***@${users.host}`)
      expect(stderr).toContain(`nats: failed cannot connect to NATS at nats://***@${tokens.host}`)
      expect(stdout).toContain(`no process connected to nats://alice:***@${users.host} hosts it`)
      expect(stdout.match(/CONNECTION_FAILED/g)).toHaveLength(2)
      expectNoSecret(stderr)
      expectNoSecret(stdout)
    } finally {
      await stop(users.server)
      await stop(tokens.server)
    }
  })
})

describe('NATS credentials: one identity per connection, refused otherwise (no server needed)', () => {
  const config = (servers, extra = {}) => ({ transport: { type: 'nats', servers, ...extra } })

  it('two URLs with different credentials: a TypeError naming the second, its password not shown', () => {
    const error = thrown(() =>
      initializeHappen(config([`nats://alice:${ENCODED}@a:4222`, 'nats://bob:other-pw@b:4222'])),
    )
    expect(error).toBeInstanceOf(TypeError)
    expect(error.message).toMatch(/config\.transport\.servers\[1\].*credentials of config\.transport\.servers\[0\]/)
    expect(error.message).toContain('nats://bob:***@b:4222')
    expect(error.message).not.toContain('other-pw')
    expectNoSecret(error.message)
  })

  it('credentials in a URL and different ones as options: a TypeError, no secret shown', () => {
    for (const extra of [{ user: 'alice', pass: 'wrong-pass' }, { token: TOKEN }]) {
      const error = thrown(() => initializeHappen(config([`nats://alice:${ENCODED}@a:4222`], extra)))
      expect(error).toBeInstanceOf(TypeError)
      expect(error.message).toMatch(/config\.transport\.servers\[0\].*config\.transport\.user, pass and token/)
      expectNoSecret(error.message)
    }
  })

  it('a URL without credentials beside one with them, or the same ones as options: accepted', async () => {
    // Accepted means the config is checked and the connection tried (nothing listens there).
    for (const transport of [
      config([`nats://${TOKEN}@127.0.0.1:1`, 'nats://127.0.0.1:2']).transport,
      config([`nats://alice:${ENCODED}@127.0.0.1:1`], { user: 'alice', pass: PASSWORD }).transport,
    ]) {
      const error = await rejection(
        Promise.resolve(initializeHappen({ transport: { ...transport, connectTimeout: 200 } })),
      )
      expect(error.code).toBe('CONNECTION_FAILED')
      expectNoSecret(error.message)
    }
  })

  it('malformed credentials in a URL, and a secret option of the wrong kind: TypeErrors that show no secret', () => {
    const cases = [
      [['nats://:only-a-password@a:4222'], {}, /servers\[0\].*user name and password/],
      [['nats://@a:4222'], {}, /servers\[0\].*token before the '@'/],
      [['nats://alice:bad%zz-pass@a:4222'], {}, /servers\[0\].*percent-encoded/],
      [['nats://alice:wrong-pass/x@a:4222'], {}, /servers\[0\].*percent-encode/],
      [['nats://a:4222'], { pass: 'wrong-pass' }, /config\.transport\.pass.*given together with/],
      [['nats://a:4222'], { user: 'alice', pass: 7 }, /config\.transport\.pass.*of type string/],
    ]
    for (const [servers, extra, expected] of cases) {
      const error = thrown(() => initializeHappen(config(servers, extra)))
      expect(error).toBeInstanceOf(TypeError)
      expect(error.message).toMatch(expected)
      expectNoSecret(error.message)
      expect(error.message).not.toContain('only-a-password')
      expect(error.message).not.toContain('bad%zz')
      expect(error.message).not.toMatch(/\b7\b/)
    }
  })
})
