/**
 * The native addon as a whole (native/src/common.h): what the production module exports (kernels, info, setThreads,
 * gemmInfo, and no benchmark probes: those are recurformer_bench.node), that every kernel family dispatches the same
 * way (a kernel table chosen by rf::pick, no CPU-feature tests of its own), and that a scratch allocation that fails
 * is a JS Error naming the kernel, thrown on the calling thread even when a pool worker ran out, after which the
 * process and its thread pool carry on (child processes with RECURFORMER_SCRATCH_TEST_LIMIT).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KERNEL_NAMES } from '../../src/tensor/kernels.js';
import { loadNative } from '../../src/tensor/native.js';

const load = loadNative();
const skip = load.addon ? false : `native addon unavailable: ${load.error ?? 'unknown error'}`;
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const benchPath = join(dirname(load.path), 'recurformer_bench.node');

test('the production addon exports every kernel, info, setThreads and gemmInfo, and no benchmark probes', { skip }, () => {
  const exported = Object.keys(load.addon!).sort();
  assert.deepEqual(exported, [...KERNEL_NAMES, 'info', 'setThreads', 'gemmInfo'].sort());
});

test('the benchmark probes are their own module, next to the addon', {
  skip: skip || (existsSync(benchPath) ? false : `${benchPath} is not built (npm run build:native builds it)`),
}, () => {
  const probes = createRequire(import.meta.url)(benchPath) as Record<string, (...a: unknown[]) => number>;
  assert.deepEqual(Object.keys(probes).sort(), ['measureBandwidth', 'measureFmaPeak']);
  assert.ok(probes.measureFmaPeak!(0.01, 1)! > 0);
  assert.ok(probes.measureBandwidth!(1 << 20, 0.01, 1)! > 0);
  assert.throws(() => probes.measureBandwidth!('x', 0.01, 1), /measureBandwidth: argument 0 must be a number/);
});

/** Every C++ source of the addon, with its path relative to native/src. */
function sources(): { name: string; text: string }[] {
  const src = join(repo, 'native', 'src');
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
  return walk(src).filter((f) => /\.(cpp|h)$/.test(f)).map((f) => ({ name: relative(src, f), text: readFileSync(f, 'utf8') }));
}

test('one dispatch style: only the runtime tests CPU features, every family picks a kernel table with rf::pick', () => {
  const files = sources();
  assert.ok(files.length > 10);
  for (const { name, text } of files) {
    // the runtime detects the instruction set; the probes module asks for AVX-512 only to measure its peak
    if (name !== 'runtime.cpp' && name !== join('bench', 'probes.cpp')) {
      assert.doesNotMatch(text, /__builtin_cpu_supports|has_avx2|getenv\("RECURFORMER_SIMD"\)/, `${name} tests CPU features itself`);
    }
    // a family that has AVX2 code chooses between its tables with rf::pick, nowhere with if / else
    if (/RF_AVX2 [^\n]*\(/.test(text) && name.endsWith('.cpp') && !name.startsWith('gemm_')) {
      assert.match(text, /pick\(/, `${name} has AVX2 kernels but no rf::pick`);
    }
    // exports go through the guard that turns C++ exceptions into JS errors
    assert.doesNotMatch(text, /exports\.Set\([^)]*Napi::Function::New\(env, [A-Z]/, `${name} registers a function without rf::export_fn`);
  }
});

// A child process with a scratch limit: every request above 128 KiB fails as if memory had run out.
const CHILD = `
const a = require(${JSON.stringify(load.path)});
const r = (n) => Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 13) / 13 - 0.5);
const out = {};
const attempt = (name, fn) => { try { fn(); out[name] = 'ok'; } catch (e) { out[name] = e.constructor.name + ': ' + e.message; } };
// packed GEMM split over rows: every thread's packed-A buffer (~180 KiB) fails before the first barrier
attempt('gemm rows', () => { const M = 2048, N = 64, K = 512; a.gemm(0, 0, M, N, K, 1, r(M * K), 0, r(K * N), 0, 0, new Float32Array(M * N), 0, 1); });
// split over columns: each thread packs its own B (~0.9 MiB), workers and caller fail
attempt('gemm cols', () => { const M = 16, N = 4096, K = 1024; a.gemm(0, 0, M, N, K, 1, r(M * K), 0, r(K * N), 0, 0, new Float32Array(M * N), 0, 1); });
// attention tiles on pool workers (claimed items): each tile's state is ~150 KiB
attempt('attention', () => { const T = 512, H = 8, Dh = 256, n = T * H * Dh, nk = T * Dh; a.attention(r(n), r(nk), r(nk), 1, T, T, H, 1, Dh, 0.06, 1, 0, 0, 0, new Float32Array(n), new Float32Array(H * T), new Float32Array(0)); });
attempt('rope', () => { const T = 4096, D = 128; a.rope(r(T * D), 1, T, 1, D, D, Int32Array.from({ length: T }, (_, i) => i), r(D / 2), 1, 1, new Float32Array(T * D)); });
attempt('conv1dCausalGrad', () => { const C = 300000, K = 4, T = 2; a.conv1dCausalGrad(r(T * C), r(C * K), r(T * C), 1, T, C, K, new Float32Array(T * C), new Float32Array(C * K), new Float32Array(0)); });
// afterwards the pool still runs strict and claimed jobs, with the right results
const M = 96, N = 80, K = 64, A = r(M * K), B = r(K * N), C = new Float32Array(M * N);
a.gemm(0, 0, M, N, K, 1, A, 0, B, 0, 0, C, 0, 1);
let err = 0;
for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) { let s = 0; for (let k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j]; err = Math.max(err, Math.abs(s - C[i * N + j])); }
const x = r(300), y = new Float32Array(512); a.gemm(0, 1, 1, 512, 300, 1, x, 0, r(512 * 300), 0, 0, y, 0, 1);
out.after = err < 1e-4 && y.every(Number.isFinite) ? 'ok' : 'wrong results, max error ' + err;
console.log(JSON.stringify(out));
`;

for (const [threads, delayUs] of [[2, 0], [5, 0], [3, 200]] as const) {
  test(`a failed scratch allocation is a JS Error naming the kernel; the pool carries on (${threads} threads${delayUs ? ', delays' : ''}, child process)`, { skip }, () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env, RECURFORMER_SCRATCH_TEST_LIMIT: String(128 * 1024), RECURFORMER_THREADS: String(threads),
    };
    if (delayUs) env.RECURFORMER_POOL_TEST_DELAY_US = String(delayUs);
    const r = spawnSync(process.execPath, ['-e', CHILD], { env, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `child failed (signal ${r.signal}):\n${r.stdout}\n${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string>;
    const { after, ...failed } = out;
    assert.deepEqual(Object.keys(failed), ['gemm rows', 'gemm cols', 'attention', 'rope', 'conv1dCausalGrad']);
    for (const [name, what] of Object.entries(failed)) {
      const kernel = name.split(' ')[0]!;
      assert.match(what, new RegExp(`^Error: recurformer native ${kernel}: out of memory: a [0-9.]+ MiB scratch buffer could not be allocated$`), name);
    }
    assert.equal(after, 'ok');
  });
}
