#!/usr/bin/env node
// Builds the optional native backend (native/ -> native/build/Release/recurformer.node) with node-gyp.
// A failed build is not fatal: recurformer then runs on the pure-TypeScript reference backend and says so once.
// Set RECURFORMER_SKIP_NATIVE=1 to skip the build; pass --force (npm run build:native) to fail loudly instead.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const force = process.argv.includes('--force');
const require = createRequire(import.meta.url);

if (process.env.RECURFORMER_SKIP_NATIVE && !force) {
  console.log('recurformer: RECURFORMER_SKIP_NATIVE is set, skipping the native backend build');
  process.exit(0);
}

let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  gyp = null;
}
const args = gyp ? [gyp, 'rebuild', '--directory', join(root, 'native')] : null;
const r = args
  ? spawnSync(process.execPath, args, { stdio: force ? 'inherit' : ['ignore', 'inherit', 'inherit'], cwd: root })
  : { status: 1, error: new Error('node-gyp is not installed') };
const built = existsSync(join(root, 'native', 'build', 'Release', 'recurformer.node'));
if (r.status !== 0 || !built) {
  const why = r.error ? r.error.message : `node-gyp exited with ${r.status}`;
  if (force) {
    console.error(`recurformer: native build failed (${why})`);
    process.exit(1);
  }
  console.warn(
    `recurformer: native backend not built (${why}); falling back to the slower TypeScript backend.\n` +
      '  hint: install python3, make and a C++17 compiler, then run `npm run build:native`',
  );
}
process.exit(0);
