/**
 * [slow, ~1 min] The package as a user gets it: `npm pack` this checkout, install the tarball into an empty project
 * offline, then run the CLI there through npx, the worked example of docs/library.md, and a TypeScript consumer of
 * the exports map.
 *
 * Offline: once the repository is installed the npm cache holds every dependency's tarball, but not the registry
 * metadata npm needs to resolve version ranges. So the empty project starts with a lockfile holding this repository's
 * production tree (package-lock.json without its dev entries, the tree test/package/engines.test.ts checks), and npm
 * installs exactly those versions from the cache.
 *
 * The install sets RECURFORMER_SKIP_NATIVE=1: compiling the addon again would add 40-76 s on a 2-core machine for
 * nothing this test checks (scripts/build-native.mjs has its own test). The first command then runs without the
 * addon, to see the fallback warning a user gets; the others load this checkout's addon (RECURFORMER_NATIVE_PATH),
 * built from the same native/src the tarball ships, so the whole run stays well under two minutes.
 * `npm pack --ignore-scripts` packs dist/ as it is (the prepare script would recompile it in this tree), so the test
 * skips when dist/ is missing or older than src/ (after `npm install` or `npm run build` it is current).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const addon = join(repo, 'native', 'build', 'Release', 'recurformer.node');

/** npm settings a user's shell may carry (where the cache and config files are): kept. */
const KEEP_NPM = /^npm_config_(cache|userconfig|globalconfig|cafile|registry)$/i;

/**
 * The environment of a user's shell: not the npm_* variables `npm test` sets for this package (its prefix, its
 * lifecycle event, its package fields), nor the test runner's quiet flag.
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if ((!/^npm_/i.test(k) || KEEP_NPM.test(k)) && !k.startsWith('RECURFORMER_') && !k.startsWith('NODE_TEST')) env[k] = v;
  }
  return { ...env, ...extra };
}

function newestSource(dir: string): { path: string; mtime: number } {
  let best = { path: dir, mtime: 0 };
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    const c = e.isDirectory() ? newestSource(p) : e.name.endsWith('.ts') ? { path: p, mtime: statSync(p).mtimeMs } : best;
    if (c.mtime > best.mtime) best = c;
  }
  return best;
}

function skipReason(): string | false {
  const npm = spawnSync('npm', ['--version'], { encoding: 'utf8', env: userEnv() });
  if (npm.error || npm.status !== 0) return `npm pack cannot run here: npm is not usable (${npm.error?.message ?? npm.stderr.trim()})`;
  const built = [join(repo, 'dist', 'tsconfig.tsbuildinfo'), join(repo, 'dist', 'src', 'cli', 'main.js')].find((f) => existsSync(f));
  if (!built) return 'dist/ is not built (npm run build): there is nothing to pack';
  const newer = newestSource(join(repo, 'src'));
  if (newer.mtime > statSync(built).mtimeMs) return `dist/ is older than ${newer.path.slice(repo.length)} (npm run build): the tarball would not match the sources`;
  return false;
}

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout = 120_000): SpawnSyncReturns<string> & { ms: number } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  return Object.assign(r, { ms: performance.now() - t0 });
}

function ok(r: SpawnSyncReturns<string>, what: string): void {
  assert.equal(r.status, 0, `${what} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-4000)}`);
}

/** An empty project depending on the tarball, locked to the repository's production dependency tree. */
function seedProject(app: string, tarball: string): void {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as Record<string, unknown>;
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const spec = `file:../${tarball}`;
  const packages: Record<string, unknown> = {
    '': { name: 'rf-app', dependencies: { recurformer: spec } },
    'node_modules/recurformer': {
      version: pkg.version, resolved: spec, license: pkg.license, hasInstallScript: true,
      dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines,
    },
  };
  for (const [k, v] of Object.entries(lock.packages)) if (k.startsWith('node_modules/') && !v.dev) packages[k] = v;
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'rf-app', private: true, type: 'module', dependencies: { recurformer: spec } }));
  writeFileSync(join(app, 'package-lock.json'), JSON.stringify({ name: 'rf-app', lockfileVersion: 3, requires: true, packages }));
}

/** The first ```js block of docs/library.md: the worked example, run as the docs present it. */
function docsExample(): string {
  const m = /```js\n([\s\S]*?)```/.exec(readFileSync(join(repo, 'docs', 'library.md'), 'utf8'));
  assert.ok(m, 'docs/library.md has a ```js example');
  return m[1]!;
}

test('slow: npm pack -> offline install into an empty project -> npx recurformer, the library example, typed imports', { skip: skipReason(), timeout: 300_000 }, (t) => {
  const started = performance.now();
  const tmp = mkdtempSync(join(tmpdir(), 'rf-install-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const times: string[] = [];
  const timed = <R extends { ms: number }>(label: string, r: R): R => {
    times.push(`${label} ${(r.ms / 1000).toFixed(1)} s`);
    return r;
  };

  // pack: what `files` ships, and nothing it should not
  const pack = timed('pack', sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], repo, userEnv()));
  ok(pack, 'npm pack');
  const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[]; size: number }[];
  const files = new Set(info!.files.map((f) => f.path));
  for (const f of ['package.json', 'bin/recurformer.js', 'scripts/build-native.mjs', 'dist/src/index.js', 'dist/src/index.d.ts',
    'dist/src/tensor/index.js', 'dist/src/cli/main.js', 'native/binding.gyp', 'models/stories260K/model.safetensors',
    'data/tinystories-valid-excerpt/tinystories_val.txt', 'data/gutenberg/frankenstein_pg84.txt', 'docs/library.md', 'LICENSE']) {
    assert.ok(files.has(f), `the package ships ${f}`);
  }
  assert.ok([...files].some((f) => /^native\/src\/.+\.cpp$/.test(f)), 'the package ships the addon sources');
  const unwanted = [...files].filter((f) => /\.map$|\.tsbuildinfo$|^native\/build\/|^test\/|^src\/|(?<!\.d)\.ts$|^models\/demo-llama-(75|hh)\//.test(f));
  assert.deepEqual(unwanted, [], 'no source maps, build state, tests, TypeScript sources, the demo\'s trained checkpoints or the HashHop demo model');

  // install the tarball into an empty ESM project, offline
  const app = join(tmp, 'app');
  mkdirSync(app);
  seedProject(app, info!.filename);
  const install = timed('install', sh('npm', ['install', '--offline', '--no-audit', '--no-fund', join(tmp, info!.filename)], app,
    userEnv({ RECURFORMER_SKIP_NATIVE: '1' })));
  ok(install, 'npm install --offline of the tarball');
  assert.ok(existsSync(join(app, 'node_modules', '.bin', 'recurformer-build-native')), 'the build hint\'s bin is installed');

  const npx = (label: string, args: string[], env: NodeJS.ProcessEnv): SpawnSyncReturns<string> => {
    const r = timed(label, sh('npx', ['--offline', 'recurformer', ...args], app, env));
    ok(r, `npx recurformer ${args.join(' ')}`);
    return r;
  };
  const native = userEnv(existsSync(addon) ? { RECURFORMER_NATIVE_PATH: addon } : { RECURFORMER_QUIET: '1' });

  // the installed package has no addon: the first command warns once, with the cost and the bin that builds it
  const gen = npx('generate', ['generate', '-n', '5', '--json'], userEnv());
  const out = JSON.parse(gen.stdout) as { ids: number[]; text: string };
  assert.ok(out.ids.length >= 1 && out.ids.length <= 5 && typeof out.text === 'string', gen.stdout);
  assert.equal(gen.stderr.match(/native backend unavailable/g)?.length, 1, gen.stderr);
  assert.match(gen.stderr, /single-threaded and about 75x slower/);
  assert.match(gen.stderr, /`npx recurformer-build-native`/);

  assert.match(npx('inspect', ['inspect'], native).stdout, /stories260K/);
  const data = join(app, 'node_modules', 'recurformer', 'data', 'tinystories-valid-excerpt', 'tinystories_val.txt');
  npx('analyze', ['analyze', '--data', data, '--out', 'an', '--samples', '2', '--seq', '128'], native);
  assert.ok(existsSync(join(app, 'an', 'analysis.json')));
  const conv = JSON.parse(npx('convert', ['convert', '--analysis', 'an/analysis.json', '--budget', '0.5', '--out', 'conv', '--json'], native).stdout) as
    { calibrated: boolean; replacedGroups: number };
  assert.equal(conv.calibrated, true, 'convert calibrated on the bundled TinyStories excerpt');
  assert.equal(conv.replacedGroups, 10);
  const needle = JSON.parse(npx('eval needle', ['eval', 'needle', '--lengths', '256', '--depths', '0.5', '--samples', '1', '--json'], native).stdout) as
    { task: string };
  assert.equal(needle.task, 'needle');

  // the worked example of docs/library.md, as a user would run it
  writeFileSync(join(app, 'example.mjs'), docsExample());
  const ex = timed('docs example', sh(process.execPath, ['example.mjs'], app, native));
  ok(ex, 'the docs/library.md example');
  assert.match(ex.stdout, /waiver mechanism: /);
  assert.ok((JSON.parse(readFileSync(join(app, 'stories-50', 'config.json'), 'utf8')) as { recurformer?: unknown }).recurformer);

  // the exports map at run time: the documented subpaths resolve, internals outside it do not
  const probe = timed('exports', sh(process.execPath, ['--input-type=module', '-e', `
    import { createRequire } from 'node:module';
    const T = await import('recurformer/tensor');
    const loop = await import('recurformer/dist/src/train/loop.js');
    const pkg = createRequire(import.meta.url)('recurformer/package.json');
    let hidden = 'resolved';
    try { await import('recurformer/bin/recurformer.js'); } catch (e) { hidden = e.code; }
    console.log(JSON.stringify({ matmul: typeof T.matmul, runTraining: typeof loop.runTraining, name: pkg.name, hidden }));`], app, native));
  ok(probe, 'importing the exported subpaths');
  assert.deepEqual(JSON.parse(probe.stdout), { matmul: 'function', runTraining: 'function', name: 'recurformer', hidden: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });

  // and for TypeScript: every export has its declarations (the "types" conditions)
  writeFileSync(join(app, 'check.ts'), `
    import { loadModel, generate, DecodeSession, type Analysis, type GenerateResult } from 'recurformer';
    import { matmul } from 'recurformer/tensor';
    import { runTraining } from 'recurformer/dist/src/train/loop.js';
    export const fns: Function[] = [loadModel, generate, DecodeSession, matmul, runTraining];
    export type Mechanism = Analysis['waiver']['mechanism'];
    export const reason = (r: GenerateResult): string => r.stopReason;\n`);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true,
      types: ['node'], typeRoots: [join(repo, 'node_modules', '@types')],
    },
    files: ['check.ts'],
  }));
  ok(timed('tsc', sh(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], app, userEnv())),
    'type-checking a consumer of the exports map');

  const total = (performance.now() - started) / 1000;
  t.diagnostic(`${times.join(', ')}; total ${total.toFixed(1)} s (tarball ${(info!.size / 1e6).toFixed(1)} MB)`);
});
