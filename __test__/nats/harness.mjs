// Child processes and NATS servers for the transport tests; everything started here is
// stopped by stopAll().
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const NATS_URL = process.env.HAPPEN_NATS_URL || ''
export const skipMessage =
  'HAPPEN_NATS_URL is not set: the NATS transport tests need a nats-server (.ci/run starts one)'
export const hasNatsServer = spawnSync('nats-server', ['--version'], { stdio: 'ignore' }).status === 0

const host = fileURLToPath(new URL('./host.mjs', import.meta.url))
const started = new Set()

/**
 * Starts host.mjs serving `ids`; resolves once its nodes are reachable. `env` adds to the
 * child's environment, `options` to its transport's; `child.stderr.text()` is what it wrote to
 * stderr so far.
 */
export function spawnHost(url, ids, heartbeat = 200, env = {}, options = {}) {
  return spawnReady(host, [url, ids.join(','), String(heartbeat), JSON.stringify(options)], ids, env)
}

/** Starts `script` with `args` like spawnHost (`label` names it in errors); resolves once it prints "ready". */
export function spawnReady(script, args, label, env = {}) {
  const ids = label
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  })
  started.add(child)
  child.on('exit', () => started.delete(child))
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  child.stderr.text = () => stderr
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`host ${ids} not ready in 10 s: ${stderr}`)), 10_000)
    child.stdout.on('data', (d) => {
      if (String(d).includes('ready')) {
        clearTimeout(timer)
        resolve(child)
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`host ${ids} exited with ${code}: ${stderr}`))
    })
  })
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
}

/**
 * Starts a nats-server of its own on `port`; resolves once it accepts clients. `config`: the
 * text of a configuration file for it (e.g. `max_payload: 65536`).
 */
export function startServer(port, extra = [], config = null) {
  if (config !== null) {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'happen-nats-')), 'server.conf')
    fs.writeFileSync(file, config)
    extra = ['-c', file, ...extra]
  }
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  started.add(child)
  child.on('exit', () => started.delete(child))
  return new Promise((resolve, reject) => {
    let log = ''
    const timer = setTimeout(() => reject(new Error(`nats-server not ready: ${log}`)), 10_000)
    child.stderr.on('data', (d) => {
      log += d
      if (log.includes('Server is ready')) {
        clearTimeout(timer)
        resolve(child)
      }
    })
  })
}

export function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    child.kill(signal)
  })
}

export async function stopAll() {
  await Promise.all([...started].map((child) => stop(child, 'SIGKILL')))
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits until `check()` is true (polling), or fails after `ms`. */
export async function until(check, ms = 5000) {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached in time')
    await sleep(10)
  }
}
