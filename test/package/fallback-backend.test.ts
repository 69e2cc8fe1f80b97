/**
 * Without the native addon recurformer runs on the reference backend, single-threaded and about 75x slower. It must
 * say so once per process, with what it costs and a way to build the addon that works where the package is: in a
 * user's project (package under node_modules) `npm run build:native` does not exist, `npx recurformer-build-native`
 * does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const backendTs = fileURLToPath(new URL('../../src/tensor/backend.ts', import.meta.url));

/** A fresh process selecting the backend twice with the addon expected at `addonPath` (missing). */
function selectTwice(addonPath: string): { status: number | null; stderr: string; stdout: string } {
  const env: Record<string, string | undefined> = { ...process.env, RECURFORMER_NATIVE_PATH: addonPath };
  delete env.RECURFORMER_QUIET;
  delete env.RECURFORMER_BACKEND;
  const code = `const b = await import(${JSON.stringify(backendTs)}); console.log(b.backend().name, b.backend().name);`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: repo, env, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

test('the reference fallback is announced once, with its cost and a build hint for a clone', () => {
  const r = selectTwice('/nonexistent/recurformer/native/build/Release/recurformer.node');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'reference reference');
  assert.equal(r.stderr.match(/native backend unavailable/g)?.length, 1, r.stderr);
  assert.match(r.stderr, /single-threaded and about 75x slower/);
  assert.match(r.stderr, /`npm run build:native`/);
});

test('installed as a dependency, the hint is the package bin, not a script the user does not have', () => {
  const r = selectTwice('/app/node_modules/recurformer/native/build/Release/recurformer.node');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /`npx recurformer-build-native`/);
  assert.doesNotMatch(r.stderr, /npm run build:native/);
});
