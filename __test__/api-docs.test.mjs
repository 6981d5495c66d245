// Docs: every public declaration of index.d.ts, and every method, carries an @example
// (what `npm run docs` renders with TypeDoc).
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const file = path.join(root, 'index.d.ts')
const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true)

const hasExample = (node) => ts.getJSDocTags(node).some((tag) => tag.tagName.text === 'example')
const nameOf = (node) => node.name?.getText(source) ?? '(anonymous)'

describe('API reference', () => {
  it('every exported declaration and every method has an @example', () => {
    const missing = []
    let checked = 0
    for (const statement of source.statements) {
      const exported = statement.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
      if (!exported) continue
      checked++
      if (!hasExample(statement)) missing.push(nameOf(statement))
      if (!ts.isInterfaceDeclaration(statement) && !ts.isClassDeclaration(statement)) continue
      const seen = new Set()
      for (const member of statement.members) {
        const name = `${nameOf(statement)}.${nameOf(member)}`
        if (!ts.isMethodSignature(member) || seen.has(name)) continue
        // Overloads share the first one's documentation.
        seen.add(name)
        checked++
        if (!hasExample(member)) missing.push(name)
      }
    }
    expect(missing).toEqual([])
    expect(checked).toBeGreaterThan(40)
  })
})
