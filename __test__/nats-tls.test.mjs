// Issue 21: TLS and mutual TLS with users and the least-privilege template, on real
// nats-servers whose certificates this test makes with openssl (a CA, the server's for
// 127.0.0.1, a client's).
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { initializeHappen } from 'happen'
import { NATS_URL, freePort, hasNatsServer, spawnHost, startServer, stopAll } from './nats/harness.mjs'

const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0
const template = fs.readFileSync(new URL('../examples/nats-permissions/server.conf', import.meta.url), 'utf8')
const passwords = { ORDERS_PASSWORD: 'orders-secret', PAYMENTS_PASSWORD: 'payments-secret', CALLER_PASSWORD: 'c4ller' }
Object.assign(process.env, passwords)

/** A CA and, signed by it, a server certificate for 127.0.0.1 and a client certificate: their files. */
function makeCertificates() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'happen-tls-'))
  const file = (name) => path.join(dir, name)
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
  const key = (name) =>
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file(name))
  key('ca.key')
  openssl('req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=happen test CA')
  for (const [name, extensions] of [
    ['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE'],
    ['client', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE'],
  ]) {
    key(`${name}.key`)
    fs.writeFileSync(file(`${name}.ext`), `${extensions}\n`)
    openssl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=happen test ${name}`)
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    )
  }
  return {
    ca: file('ca.pem'),
    cert: file('server.pem'),
    key: file('server.key'),
    clientCert: file('client.pem'),
    clientKey: file('client.key'),
  }
}

/** The permissions template served over TLS (`verify`: clients must show a certificate). */
async function tlsServer(files, verify) {
  const port = await freePort()
  const tls = `tls {\n  cert_file: "${files.cert}"\n  key_file: "${files.key}"\n  ca_file: "${files.ca}"\n  verify: ${verify}\n  timeout: 2\n}\n`
  await startServer(port, [], `${tls}${template}`)
  return `tls://127.0.0.1:${port}`
}

const caller = (url, extra) => ({
  type: 'nats',
  servers: [url],
  user: 'caller',
  pass: passwords.CALLER_PASSWORD,
  scope: 'caller',
  heartbeat: 300,
  connectTimeout: 2000,
  ...extra,
})

describe.skipIf(!NATS_URL || !hasNatsServer || !hasOpenssl)(
  'NATS transport over TLS, with users and permissions',
  () => {
    let files

    beforeAll(() => {
      files = makeCertificates()
    })

    afterAll(() => stopAll())

    it('TLS: a confined host and a confined caller that trust the CA reach each other', async () => {
      const url = await tlsServer(files, false)
      const trust = { tls: true, tlsCaFile: files.ca }
      await spawnHost(
        url,
        ['orders'],
        300,
        {},
        { user: 'orders', pass: passwords.ORDERS_PASSWORD, scope: 'orders', ...trust },
      )
      const happen = await initializeHappen({ transport: caller(url, trust) })
      try {
        await happen.ready()
        expect((await happen.node('orders').send({ type: 'echo', payload: 'over TLS' }).return()).payload).toBe(
          'over TLS',
        )
      } finally {
        await happen.shutdown()
      }
    })

    it('TLS: a caller that does not trust the server’s certificate fails CONNECTION_FAILED, naming no secret', async () => {
      const url = await tlsServer(files, false)
      const error = await initializeHappen({ transport: caller(url, { tls: true }) }).then(
        () => null,
        (e) => e,
      )
      expect(error?.code).toBe('CONNECTION_FAILED')
      expect(error.message).not.toContain(passwords.CALLER_PASSWORD)
    })

    it('mutual TLS: without a client certificate the connection is refused; with one, sends work', async () => {
      const url = await tlsServer(files, true)
      const trust = { tls: true, tlsCaFile: files.ca }
      const refused = await initializeHappen({ transport: caller(url, trust) }).then(
        () => null,
        (e) => e,
      )
      expect(refused?.code).toBe('CONNECTION_FAILED')
      const identity = { ...trust, tlsCertFile: files.clientCert, tlsKeyFile: files.clientKey }
      await spawnHost(
        url,
        ['orders'],
        300,
        {},
        { user: 'orders', pass: passwords.ORDERS_PASSWORD, scope: 'orders', ...identity },
      )
      const happen = await initializeHappen({ transport: caller(url, identity) })
      try {
        await happen.ready()
        expect((await happen.node('orders').send({ type: 'echo', payload: 'mutual' }).return()).payload).toBe('mutual')
      } finally {
        await happen.shutdown()
      }
    })
  },
)
