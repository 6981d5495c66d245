#!/usr/bin/env node
'use strict'

// Builds the native addon with cargo and puts it where lib/native.js looks for it.
//   --if-missing  do nothing when an addon already loads (the npm install hook: a packed
//                 tarball carries one, and a fresh clone builds one)
//   --debug       a debug build (faster to compile, slower to run)
//
// Installed as a dependency (inside node_modules), the build happens in a temporary cargo
// target directory that is removed once the addon is copied out, so no build folder (some
// 400 MB) stays in the user's node_modules; in a checkout of happen it uses ./target. A
// CARGO_TARGET_DIR the user set is used, and kept, in both cases. npm hides an install
// script's output, so progress goes to the terminal (/dev/tty) when there is one.

const { spawnSync } = require('node:child_process')
const { copyFileSync, existsSync, mkdtempSync, openSync, rmSync, writeSync, closeSync } = require('node:fs')
const { join, sep } = require('node:path')
const { tmpdir } = require('node:os')

const root = join(__dirname, '..')
const target = join(root, `happen.${process.platform}-${process.arch}.node`)
const args = new Set(process.argv.slice(2))
const debug = args.has('--debug')
const asDependency = root.split(sep).includes('node_modules')

/** Where progress is shown: the terminal itself when npm captures our output, else stderr. */
const progress = (() => {
  if (process.stderr.isTTY) return { fd: 2, tty: true }
  if (process.platform !== 'win32') {
    try {
      return { fd: openSync('/dev/tty', 'w'), tty: true }
    } catch {}
  }
  return { fd: 2, tty: false }
})()

function say(line) {
  writeSync(progress.fd, `${line}\n`)
}

function loads(file) {
  if (!existsSync(file)) return false
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { stdio: 'ignore' })
  return probe.status === 0
}

if (args.has('--if-missing') && loads(target)) {
  console.log(`happen: using the prebuilt addon ${target}`)
  process.exit(0)
}

const cargo = process.env.CARGO || 'cargo'
const probe = spawnSync(cargo, ['--version'], { stdio: 'ignore' })
if (probe.error || probe.status !== 0) {
  say(
    'happen: no prebuilt addon fits this platform and cargo was not found.\n' +
      'Install a Rust toolchain (https://rustup.rs) and run `npm rebuild happen`.',
  )
  process.exit(1)
}

const userTargetDir = process.env.CARGO_TARGET_DIR
const targetDir = userTargetDir || (asDependency ? mkdtempSync(join(tmpdir(), 'happen-build-')) : join(root, 'target'))
const removeTargetDir = !userTargetDir && asDependency

say(
  `happen: compiling the native addon (${debug ? 'debug' : 'release'}) with cargo; ` +
    'this takes about 2 minutes the first time (crates are fetched from crates.io)...',
)
let status
try {
  const build = spawnSync(
    cargo,
    ['build', '--lib', ...(debug ? [] : ['--release']), ...(asDependency ? ['--locked'] : [])],
    {
      cwd: root,
      stdio: ['ignore', progress.fd, progress.fd],
      env: {
        ...process.env,
        CARGO_TARGET_DIR: targetDir,
        // cargo draws its progress bar only on a terminal; a captured log gets its lines.
        ...(progress.tty ? { CARGO_TERM_PROGRESS_WHEN: 'always', CARGO_TERM_PROGRESS_WIDTH: '80' } : {}),
      },
    },
  )
  status = build.error ? 1 : build.status
  if (status === 0) {
    const library =
      { linux: 'libhappen.so', darwin: 'libhappen.dylib', win32: 'happen.dll' }[process.platform] ?? 'libhappen.so'
    copyFileSync(join(targetDir, debug ? 'debug' : 'release', library), target)
    say(`happen: built ${target}`)
  }
} finally {
  if (removeTargetDir) rmSync(targetDir, { recursive: true, force: true })
  if (progress.fd !== 2) closeSync(progress.fd)
}
process.exit(status ?? 1)
