#!/usr/bin/env node
// Thin shim: the CLI lives in src/cli/main.ts, compiled to dist/ (shipped in the package; built by `npm install` in a
// clone via the prepare script). It builds and compiles nothing itself, so every start is quick.
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
let main;
try {
  ({ main } = await import(entry.href));
} catch (e) {
  // a clone installed with --ignore-scripts has no dist/: say what to run instead of a module-resolution trace
  if (existsSync(entry)) throw e;
  console.error('recurformer: the CLI is not compiled (dist/ is missing); run `npm run build` in the recurformer folder');
  process.exit(1);
}
// A reader that stops early (`recurformer inspect | head -1`) ends our output, not the process with a stack trace.
process.stdout.on('error', (e) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(process.exitCode ?? 0);
});
process.exitCode = await main(process.argv.slice(2));
