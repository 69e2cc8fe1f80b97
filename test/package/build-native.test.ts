/**
 * scripts/build-native.mjs, run on a copy of the package layout with a stand-in node-gyp (npm_config_node_gyp) that
 * only records its calls: an install-time run keeps an addon built from the current sources (the first `npx
 * recurformer` in a clone re-runs the install script and used to rebuild for 40-76 s), rebuilds a stale one, and a
 * failed install-time build warns with a hint that works where the package is (a user's project has no
 * `npm run build:native`). An explicit run always rebuilds and fails loudly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const repo = new URL('../..', import.meta.url).pathname;
const builtAddon = join(repo, 'native', 'build', 'Release', 'recurformer.node');

/** A package root at `dir` (scripts/, native/src, native/binding.gyp) and a fake node-gyp that logs and exits `code`. */
function layout(dir: string, gypExit: number): { root: string; gyp: string; log: string } {
  const root = dir;
  mkdirSync(join(root, 'scripts'), { recursive: true });
  mkdirSync(join(root, 'native', 'src'), { recursive: true });
  copyFileSync(join(repo, 'scripts', 'build-native.mjs'), join(root, 'scripts', 'build-native.mjs'));
  writeFileSync(join(root, 'native', 'binding.gyp'), '{}\n');
  writeFileSync(join(root, 'native', 'src', 'a.cpp'), '// source\n');
  const log = join(root, 'gyp.log'), gyp = join(root, 'fake-node-gyp.js');
  writeFileSync(gyp, `require('fs').appendFileSync(${JSON.stringify(log)}, process.argv.slice(2).join(' ') + '\\n'); process.exit(${gypExit});\n`);
  return { root, gyp, log };
}

function run(root: string, gyp: string, env: Record<string, string>, args: string[] = []): { status: number | null; out: string; ms: number } {
  const base = { ...process.env };
  delete base.RECURFORMER_SKIP_NATIVE;
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), ...args], {
    env: { ...base, npm_config_node_gyp: gyp, ...env }, encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout + r.stderr, ms: performance.now() - t0 };
}

const calls = (log: string): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);

test('install-time run keeps an addon built from the current sources: no node-gyp call', { skip: existsSync(builtAddon) ? false : 'the native addon is not built in this checkout' }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-build-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { root, gyp, log } = layout(dir, 1);
  mkdirSync(join(root, 'native', 'build', 'Release'), { recursive: true });
  const addon = join(root, 'native', 'build', 'Release', 'recurformer.node');
  copyFileSync(builtAddon, addon);
  const old = new Date(Date.now() - 3600_000);
  for (const f of ['binding.gyp', 'src/a.cpp']) utimesSync(join(root, 'native', f), old, old);
  const r = run(root, gyp, { npm_lifecycle_event: 'install' });
  assert.equal(r.status, 0, r.out);
  assert.deepEqual(calls(log), [], 'node-gyp must not run');
  assert.match(r.out, /already built/);
  t.diagnostic(`install-time run with a current addon: ${r.ms.toFixed(0)} ms`);

  // a source edited after the build makes it stale: rebuilt
  utimesSync(join(root, 'native', 'src', 'a.cpp'), new Date(), new Date(Date.now() + 1000));
  run(root, gyp, { npm_lifecycle_event: 'install' });
  assert.equal(calls(log).length, 1);
  assert.match(calls(log)[0]!, /^rebuild --directory /);
});

test('failed install-time build warns and exits 0; the hint fits a clone or a dependency', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-build-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const clone = layout(join(dir, 'clone'), 1);
  const a = run(clone.root, clone.gyp, { npm_lifecycle_event: 'install' });
  assert.equal(a.status, 0, a.out);
  assert.equal(calls(clone.log).length, 1);
  assert.match(a.out, /single-threaded and about 75x slower/);
  assert.match(a.out, /`npm run build:native`/);

  const dep = layout(join(dir, 'app', 'node_modules', 'recurformer'), 1);
  const b = run(dep.root, dep.gyp, { npm_lifecycle_event: 'install' });
  assert.equal(b.status, 0, b.out);
  assert.match(b.out, /`npx recurformer-build-native`/);
  assert.doesNotMatch(b.out, /npm run build:native/);

  // RECURFORMER_SKIP_NATIVE skips the install-time build and still says how to build later
  const c = run(dep.root, dep.gyp, { npm_lifecycle_event: 'install', RECURFORMER_SKIP_NATIVE: '1' });
  assert.equal(c.status, 0);
  assert.equal(calls(dep.log).length, 1, 'no second node-gyp call');
  assert.match(c.out, /npx recurformer-build-native/);
});

test('an explicit run (npx recurformer-build-native, npm run build:native) always rebuilds and fails loudly', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-build-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { root, gyp, log } = layout(dir, 1);
  const r = run(root, gyp, { npm_lifecycle_event: 'npx', RECURFORMER_SKIP_NATIVE: '1' });
  assert.equal(r.status, 1, r.out);
  assert.equal(calls(log).length, 1);
  assert.match(r.out, /native build failed/);
  const f = run(root, gyp, { npm_lifecycle_event: 'build:native' }, ['--force']);
  assert.equal(f.status, 1);
  assert.equal(calls(log).length, 2);
});

test('package.json: the bin hint exists, and prepare/build are incremental (a re-run in a built clone is a no-op)', () => {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };
  assert.equal(pkg.bin['recurformer-build-native'], 'scripts/build-native.mjs');
  assert.match(readFileSync(join(repo, 'scripts', 'build-native.mjs'), 'utf8'), /^#!\/usr\/bin\/env node\n/);
  // `npx recurformer` in a clone re-runs prepare too: `tsc -b` skips the compile when dist is current
  assert.match(pkg.scripts.prepare!, /^tsc -b\b/);
  assert.equal(pkg.scripts.install, 'node scripts/build-native.mjs');
});
