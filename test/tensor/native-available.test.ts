/**
 * Whether this run has the native addon. Without it (no compiler, or RECURFORMER_NATIVE_PATH=none) the native
 * variants of the backend tests do not run (test/helpers/backends.ts) and the native kernel suites skip with a
 * one-line reason; this file says so once, as a skipped test, so a green run without the addon is visibly one.
 * RECURFORMER_NATIVE_PATH=none must behave exactly like a missing addon: the reference backend, one warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../../src/tensor/native.js';

const load = loadNative();

test('the native addon loads', { skip: load.addon ? false : `native addon unavailable: ${load.error ?? 'unknown error'}` }, (t) => {
  const info = load.addon!.info();
  t.diagnostic(`native addon ${load.path}: simd ${info.simd}, ${info.threads} threads`);
  assert.ok(info.threads >= 1);
});

test('RECURFORMER_NATIVE_PATH=none disables the addon: the reference backend, with the usual warning', () => {
  const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const env: NodeJS.ProcessEnv = { ...process.env, RECURFORMER_NATIVE_PATH: 'none' };
  delete env.RECURFORMER_QUIET;
  delete env.RECURFORMER_BACKEND;
  const script = "import { backend } from './src/tensor/backend.ts'; console.log(backend().name);";
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repo, env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'reference');
  assert.match(r.stderr, /native backend unavailable \(disabled by RECURFORMER_NATIVE_PATH=none\)/);
});
