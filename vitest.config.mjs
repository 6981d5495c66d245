import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const root = path.dirname(fileURLToPath(import.meta.url))

export default defineConfig({
  resolve: {
    // `import ... from 'happen'` in the tests reads like the documentation and
    // resolves to this checkout's ESM entry point.
    alias: [{ find: /^happen$/, replacement: path.resolve(root, 'index.mjs') }],
  },
  test: {
    include: ['__test__/**/*.test.mjs'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
})
