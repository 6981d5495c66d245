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
    `happen: no usable native addon in ${root}${tried}. Build it with \`npm rebuild happen\` in your project ` +
      '(needs a Rust toolchain: https://rustup.rs; under npm 11 first allow its install script with ' +
      '`npm install-scripts approve happen`), or with `npm run build` in a checkout of happen.',
  )
}

// The addon's exports object holds its functions in dictionary mode (too many properties are
// defined on it one by one), which makes every `native.f` a hash lookup through a generic IC;
// a copy has fast properties, and every load of one is inlined in optimised code.
const addon = { ...load() }
/**
 * The thread's argument buffer: the hottest calls (`dispatch`) take no arguments and read the
 * core handle from `args[0]` (a call without arguments skips napi-rs's per-call borrow scope).
 */
addon.args = new Float64Array(4)
addon.bindArgs(addon.args)

module.exports = addon
