#!/usr/bin/env node
// Builds the optional native backend (native/ -> native/build/Release/recurformer.node) with node-gyp, and next to
// it the benchmarks' hardware probes (recurformer_bench.node, native/src/bench/; only bench/ loads it).
//
// As the package's install script (npm_lifecycle_event=install) it does nothing when the addon is already built from
// the current sources and loads in this Node. Re-runs are common: `npx recurformer` inside a clone makes npm install
// the clone into its npx cache as a link, which runs the clone's install and prepare scripts again, silently (npm
// hides the output of dependency scripts); an unconditional rebuild cost 40-76 s there. A failed install-time build is
// not fatal: recurformer then runs on the pure-TypeScript reference backend and says so when it starts.
//
// Run any other way (`npm run build:native`, `npx recurformer-build-native`, `npm exec`, `node scripts/...`) it
// always rebuilds, shows the compiler output and exits 1 on failure. RECURFORMER_SKIP_NATIVE=1 skips the install-time
// build.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const native = join(root, 'native');
const addon = join(native, 'build', 'Release', 'recurformer.node');
const explicit = process.argv.includes('--force') || process.env.npm_lifecycle_event !== 'install';
const require = createRequire(import.meta.url);
// in a user's project the package sits under node_modules, where `npm run build:native` does not exist
const hint = root.split(sep).includes('node_modules')
  ? '`npx recurformer-build-native` (or `npm rebuild recurformer`)'
  : '`npm run build:native`';

if (process.env.RECURFORMER_SKIP_NATIVE && !explicit) {
  console.log(`recurformer: RECURFORMER_SKIP_NATIVE is set, skipping the native backend build (build it later with ${hint})`);
  process.exit(0);
}

/** Every file under `dir`, subfolders included (native/src/bench holds the probes' sources). */
function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]);
}

/** The addon exists, is newer than every source, and loads here (not built for another Node ABI or platform). */
function upToDate() {
  if (!existsSync(addon)) return false;
  const built = statSync(addon).mtimeMs;
  const sources = [join(native, 'binding.gyp'), ...filesUnder(join(native, 'src'))];
  if (sources.some((f) => statSync(f).mtimeMs > built)) return false;
  try {
    require(addon);
    return true;
  } catch {
    return false;
  }
}

/**
 * npm hands every script it runs its own node-gyp (npm_config_node_gyp), the one that matches the npm and Node in
 * use, so the package need not depend on one (node-gyp 12 requires Node ^20.17); a local node-gyp (a dev dependency)
 * serves direct `node scripts/build-native.mjs` runs.
 */
function nodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return null;
  }
}

if (!explicit && upToDate()) {
  console.log('recurformer: the native backend is already built from the current sources');
  process.exit(0);
}

const gyp = nodeGyp();
const args = ['rebuild', '--directory', native];
const r = gyp === null
  ? { status: 1, error: new Error('node-gyp is not available: run this through npm (npx, npm run, npm rebuild), which provides it') }
  : /\.[cm]?js$/.test(gyp)
    ? spawnSync(process.execPath, [gyp, ...args], { stdio: explicit ? 'inherit' : ['ignore', 'inherit', 'inherit'], cwd: root })
    : spawnSync(gyp, args, { stdio: explicit ? 'inherit' : ['ignore', 'inherit', 'inherit'], cwd: root });
if (r.status !== 0 || !existsSync(addon)) {
  const why = r.error ? r.error.message : `node-gyp exited with ${r.status}`;
  if (explicit) {
    console.error(`recurformer: native build failed (${why})`);
    process.exit(1);
  }
  console.warn(
    `recurformer: native backend not built (${why}); recurformer will run on the TypeScript reference backend, ` +
      'which is single-threaded and about 75x slower.\n' +
      `  hint: install python3, make and a C++17 compiler, then run ${hint}`,
  );
}
process.exit(0);
