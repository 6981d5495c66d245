'use strict'

// Loads the compiled addon: the one built for this platform next to the package root, else
// the generic name the install script writes.
const { join } = require('node:path')
const { existsSync } = require('node:fs')

const root = join(__dirname, '..')
const candidates = [`happen.${process.platform}-${process.arch}.node`, 'happen.node']

function load() {
  const errors = []
  for (const name of candidates) {
    const file = join(root, name)
    if (!existsSync(file)) continue
    try {
      return require(file)
    } catch (error) {
      errors.push(`${name}: ${error.message}`)
    }
  }
  const tried = errors.length ? ` (${errors.join('; ')})` : ''
  throw new Error(
    `happen: no usable native addon in ${root}${tried}. Build it with \`npm run build\` (needs a Rust toolchain: https://rustup.rs).`,
  )
}

const addon = load()
/**
 * The thread's argument buffer: the hottest calls (`dispatch`) take no arguments and read the
 * core handle from `args[0]` (a call without arguments skips napi-rs's per-call borrow scope).
 */
addon.args = new Float64Array(4)
addon.bindArgs(addon.args)

module.exports = addon
