// Install from source: with no addon, the error gives commands that work in the user's project.
import { cpSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

describe('no usable native addon', () => {
  it('the error says `npm rebuild happen` and how to allow the install script under npm 11', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'happen-no-addon-'))
    try {
      mkdirSync(path.join(dir, 'lib'))
      cpSync(path.join(root, 'lib', 'native.js'), path.join(dir, 'lib', 'native.js'))
      const require = createRequire(path.join(dir, 'index.js'))
      let error
      try {
        require('./lib/native.js')
      } catch (e) {
        error = e
      }
      expect(error?.message).toContain('no usable native addon')
      expect(error.message).toContain('`npm rebuild happen`')
      expect(error.message).toContain('`npm install-scripts approve happen`')
      expect(error.message).toContain('https://rustup.rs')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('the build script builds outside node_modules/happen when installed as a dependency, and says how long it takes', async () => {
    const { readFileSync } = await import('node:fs')
    const script = readFileSync(path.join(root, 'scripts', 'build-native.js'), 'utf8')
    expect(script).toContain('about 2 minutes')
    expect(script).toMatch(/mkdtempSync\(join\(tmpdir\(\), 'happen-build-'\)\)/)
    expect(script).toMatch(/rmSync\(targetDir, \{ recursive: true, force: true \}\)/)
  })
})
