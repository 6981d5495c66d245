#!/usr/bin/env node
'use strict'

// Builds the native addon with cargo and puts it where lib/native.js looks for it.
//   --if-missing  do nothing when an addon already loads (the npm install hook: a packed
//                 tarball carries one, and a fresh clone builds one)
//   --debug       a debug build (faster to compile, slower to run)

const { spawnSync } = require('node:child_process')
const { copyFileSync, existsSync } = require('node:fs')
const { join } = require('node:path')

const root = join(__dirname, '..')
const target = join(root, `happen.${process.platform}-${process.arch}.node`)
const args = new Set(process.argv.slice(2))
const debug = args.has('--debug')

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
  console.error(
    'happen: no prebuilt addon fits this platform and cargo was not found.\n' +
      'Install a Rust toolchain (https://rustup.rs) and run `npm rebuild happen`.',
  )
  process.exit(1)
}

console.log(`happen: compiling the native addon (${debug ? 'debug' : 'release'}) with cargo...`)
const build = spawnSync(cargo, ['build', '--lib', ...(debug ? [] : ['--release'])], { cwd: root, stdio: 'inherit' })
if (build.status !== 0) process.exit(build.status ?? 1)

const library = { linux: 'libhappen.so', darwin: 'libhappen.dylib', win32: 'happen.dll' }[process.platform] ?? 'libhappen.so'
copyFileSync(join(root, 'target', debug ? 'debug' : 'release', library), target)
console.log(`happen: built ${target}`)
