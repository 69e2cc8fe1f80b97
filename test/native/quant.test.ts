/**
 * Quantized-weight products (gemmQ) and dequantization (dequantQ) of the addon against the reference backend and
 * against the GGUF reader's dequantizer (io/ggml-quants.ts, itself checked bit for bit on hand-built blocks and,
 * through llama.cpp's greedy tokens, on real files): Q8_0, Q4_K, Q5_K and Q6_K, weights from our quantizer and
 * random block bytes (every code and scale reachable), 1 to 37 activation rows (integer dot products over 8-bit
 * activations, up to eight rows sharing each unpacked weight piece; on AMX, tiles of 16 rows), odd row counts. Also:
 * rows do not depend on how many are computed together, the error the activation rounding may cause (bounded per
 * output), and the argument errors. Re-run with RECURFORMER_SIMD=scalar, with RECURFORMER_SIMD=avx2 where the CPU
 * has AVX-512 VNNI, and with RECURFORMER_SIMD=avx512 where it has AMX: every kernel set gives the K-quants the same
 * bits (exact integer sums per super-block, then the same float steps).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/tensor/rng.js';
import { getBackend } from '../../src/tensor/index.js';
import { loadNative } from '../../src/tensor/native.js';
import { dequantize, GGML_BLOCK, GgmlType, quantize, type QuantType } from '../../src/io/ggml-quants.js';
import { f32ToF16 } from '../../src/io/tensor-file.js';
import { TOL, assertClose } from '../helpers/tolerances.js';

const load = loadNative();
const skip = load.addon && typeof load.addon.gemmQ === 'function' ? false : `native addon unavailable: ${load.error ?? 'no gemmQ'}`;
const isChild = process.env.RF_QUANT_CHILD === '1';
const TYPES = [GgmlType.Q8_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K] as const;
/** Byte offsets of the f16 scales in a block, set to finite values in random blocks. */
const SCALES: Record<number, number[]> = { [GgmlType.Q8_0]: [0], [GgmlType.Q4_K]: [0, 2], [GgmlType.Q5_K]: [0, 2], [GgmlType.Q6_K]: [208] };

function gaussian(n: number, rng: Rng, sigma = 1): Float32Array {
  return Float32Array.from({ length: n }, () => sigma * Math.sqrt(-2 * Math.log(rng.next() + 1e-12)) * Math.cos(2 * Math.PI * rng.next()));
}

/** N rows of K values in blocks of `type`: quantized Gaussian values, or random bytes with finite scales. */
function weight(type: number, N: number, K: number, rng: Rng, random: boolean): Uint8Array {
  if (!random) return quantize(type as QuantType, gaussian(N * K, rng, 0.02));
  const { elems, bytes } = GGML_BLOCK[type as GgmlType]!;
  const w = Uint8Array.from({ length: (N * K / elems) * bytes }, () => Math.floor(rng.next() * 256));
  for (let o = 0; o < w.length; o += bytes) {
    for (const s of SCALES[type]!) {
      const h = f32ToF16((rng.next() + 0.05) * 0.01);
      w[o + s] = h & 255;
      w[o + s + 1] = h >> 8;
    }
  }
  return w;
}

test('dequantQ equals the GGUF reader\'s dequantization bit for bit, whole or a row range', { skip }, () => {
  const nat = getBackend('native').kernels, ref = getBackend('reference').kernels;
  const rng = new Rng(5);
  for (const type of TYPES) {
    for (const random of [false, true]) {
      const N = 7, K = 512;
      const w = weight(type, N, K, rng, random);
      const want = dequantize(type, w, N * K);
      const got = new Float32Array(N * K), refGot = new Float32Array(N * K);
      nat.dequantQ(type, w, K, 0, N, got);
      ref.dequantQ(type, w, K, 0, N, refGot);
      assertClose(got, want, TOL.exact, `native dequantQ type ${type}`);
      assertClose(refGot, want, TOL.exact, `reference dequantQ type ${type}`);
      const part = new Float32Array(2 * K);
      nat.dequantQ(type, w, K, 3, 2, part);
      assertClose(part, want.subarray(3 * K, 5 * K), TOL.exact, `rows 3-4, type ${type}`);
    }
  }
});

test('gemmQ matches the reference (8-bit activations, integer products) for 1 to 37 rows', { skip }, () => {
  const nat = getBackend('native').kernels, ref = getBackend('reference').kernels;
  const rng = new Rng(9);
  for (const type of TYPES) {
    for (const [N, K] of [[1, 256], [37, 256], [19, 768]] as const) {
      for (const M of [1, 2, 5, 8, 9, 16, 21, 37]) {
        const w = weight(type, N, K, rng, M % 2 === 0);
        const a = gaussian(M * K, rng);
        const cn = new Float32Array(M * N).fill(NaN), cr = new Float32Array(M * N);
        nat.gemmQ(M, N, K, a, type, w, cn);
        ref.gemmQ(M, N, K, a, type, w, cr);
        // float32 sums of K products against float64 sums, relative to the size of the terms
        const scale = Math.max(...cr.map(Math.abs)) + 1e-6;
        assertClose(cn.map((v) => v / scale), cr.map((v) => v / scale), { rtol: 0, atol: 2e-6 * Math.sqrt(K) }, `type ${type} ${M}x${N}x${K}`);
      }
    }
  }
});

test('each row of a 2,100 x 512 product equals the same row computed alone, bit for bit (groups of 4, 8 and 16, AMX tiles, threads)', { skip }, () => {
  const nat = getBackend('native').kernels;
  const rng = new Rng(13);
  const M = 37, N = 2100, K = 512; // on AMX: two tiles of 16 rows and five rows through the AVX-512 kernels; on AVX-512 VNNI: 16 + 16 + 5
  for (const type of TYPES) {
    const w = weight(type, N, K, rng, false);
    const a = gaussian(M * K, rng);
    const all = new Float32Array(M * N);
    nat.gemmQ(M, N, K, a, type, w, all);
    for (let m = 0; m < M; m++) {
      const one = new Float32Array(N);
      nat.gemmQ(1, N, K, a.subarray(m * K, (m + 1) * K), type, w, one);
      assertClose(all.subarray(m * N, (m + 1) * N), one, TOL.exact, `type ${type} row ${m}`);
    }
  }
});

test('one activation row: the 8-bit rounding moves each output by at most its bound sum |w| * d_b / 2', { skip }, () => {
  // d_b: the step of the activation block (32 values for Q8_0, 256 for the K-quants)
  const nat = getBackend('native').kernels;
  const rng = new Rng(17);
  const N = 64, K = 1024;
  for (const type of TYPES) {
    const w = weight(type, N, K, rng, false);
    const wd = new Float32Array(N * K);
    nat.dequantQ(type, w, K, 0, N, wd);
    const x = gaussian(K, rng);
    x[5] = 40; // an outlier: its block's other values get a coarse step
    const got = new Float32Array(N);
    nat.gemmQ(1, N, K, x, type, w, got);
    let worst = 0;
    for (let j = 0; j < N; j++) {
      let exact = 0, bound = 0;
      const block = type === GgmlType.Q8_0 ? 32 : 256;
      for (let b = 0; b < K; b += block) {
        let amax = 0;
        for (let i = b; i < b + block; i++) amax = Math.max(amax, Math.abs(x[i]!));
        const step = block === 32 ? (amax / 127) * 1.001 : amax / 128; // Q8_0's step is an f16 (0.05% coarser at most)
        for (let i = b; i < b + block; i++) {
          exact += wd[j * K + i]! * x[i]!;
          bound += Math.abs(wd[j * K + i]!) * step / 2;
        }
      }
      const err = Math.abs(got[j]! - exact);
      assert.ok(err <= bound * 1.001 + 1e-6, `type ${type} row ${j}: error ${err} above the bound ${bound}`);
      worst = Math.max(worst, err / bound);
    }
    assert.ok(worst > 0.01, `type ${type}: the rounding must show (worst ${worst} of the bound), or the test proves nothing`);
  }
});

test('gemmQ and dequantQ reject unknown types, partial blocks and short operands', { skip }, () => {
  const nat = getBackend('native').kernels;
  const w = new Uint8Array(144 * 2), a = new Float32Array(256), c = new Float32Array(2);
  assert.throws(() => nat.gemmQ(1, 2, 256, a, 2, w, c), /gemmQ: type 2 is not/);
  assert.throws(() => nat.gemmQ(1, 2, 128, a, GgmlType.Q4_K, w, c), /gemmQ: K = 128 is not a positive multiple of the block \(256/);
  assert.throws(() => nat.gemmQ(1, 3, 256, a, GgmlType.Q4_K, w, new Float32Array(3)), /fewer bytes/);
  assert.throws(() => nat.gemmQ(2, 2, 256, a, GgmlType.Q4_K, w, c), /shorter/);
  assert.throws(() => nat.gemmQ(1, 2, 256, a, GgmlType.Q4_K, new Uint16Array(144) as unknown as Uint8Array, c), /Uint8Array/);
  assert.throws(() => nat.dequantQ(GgmlType.Q4_K, w, 256, 1, 2, new Float32Array(512)), /fewer bytes/);
  assert.throws(() => nat.dequantQ(GgmlType.Q4_K, w, 256, 0, 2, new Float32Array(500)), /dst is shorter/);
});

/** Runs this file in a child with RECURFORMER_SIMD set; `out` receives the child's gemmQ results for comparison. */
function runChild(simd: string): string {
  const env: NodeJS.ProcessEnv = { ...process.env, RECURFORMER_SIMD: simd, RF_QUANT_CHILD: '1' };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, `${simd} run failed:\n${`${r.stdout}\n${r.stderr}`.slice(-4000)}`);
  assert.match(r.stdout, /# fail 0/);
  assert.match(r.stdout, /# pass [1-9]/);
  return r.stdout;
}

/** A fixed product per type, hashed: the same bits on every kernel set that sums in integers (AVX2, VNNI; scalar for the K-quants). */
function fingerprint(): string {
  const nat = getBackend('native').kernels;
  const rng = new Rng(23);
  return TYPES.map((type) => {
    // 40 rows: two AMX tiles (where the CPU has them) and eight rows through the kernel table; 45 weight rows: a partial strip
    const w = weight(type, 45, 512, rng, true), a = gaussian(40 * 512, rng), c = new Float32Array(40 * 45);
    nat.gemmQ(40, 45, 512, a, type, w, c);
    return Buffer.from(c.buffer).toString('base64');
  }).join('|');
}

if (isChild && !skip) process.stdout.write(`# fingerprint ${fingerprint()}\n`);

test('the scalar kernels pass this whole file and give the SIMD kernels\' bits for the K-quants (child, RECURFORMER_SIMD=scalar)', { skip: skip || (isChild ? 'already a child run' : false) }, () => {
  const out = runChild('scalar');
  const theirs = /# fingerprint (\S+)/.exec(out)?.[1]?.split('|');
  // Q4_K, Q5_K, Q6_K end every super-block with the same exact integers and float steps on every instruction set
  // (quant_kq_steps.inc); Q8_0's portable dot product adds its blocks in another order than the SIMD one
  assert.deepEqual(theirs?.slice(1), fingerprint().split('|').slice(1), 'the scalar run computed other bits');
});

const vnniSkip = skip || (isChild ? 'already a child run' : load.addon!.info().vnni ? false : 'this CPU has no AVX-512 VNNI: the AVX2 kernels are the ones in use');
test('AVX-512 VNNI and AVX2 give the same bits (child process with RECURFORMER_SIMD=avx2)', { skip: vnniSkip }, () => {
  const out = runChild('avx2');
  const theirs = /# fingerprint (\S+)/.exec(out)?.[1];
  assert.equal(fingerprint(), theirs, 'the AVX2 run computed other bits');
});

const amxSkip = skip || (isChild ? 'already a child run' : load.addon!.info().amx ? false : 'this CPU (or OS) offers no AMX tiles: the AVX-512 / AVX2 kernels are the ones in use');
test('AMX tiles and the AVX-512 kernels give the same bits (child process with RECURFORMER_SIMD=avx512)', { skip: amxSkip }, () => {
  const out = runChild('avx512');
  const theirs = /# fingerprint (\S+)/.exec(out)?.[1];
  assert.equal(fingerprint(), theirs, 'the AVX-512 run computed other bits');
});

test('RECURFORMER_SIMD turns AMX off (avx512, avx2, scalar)', { skip }, () => {
  const info = load.addon!.info();
  const simd = process.env.RECURFORMER_SIMD;
  if (simd === 'avx512' || simd === 'avx2' || simd === 'scalar') assert.equal(info.amx, false);
  if (!info.vnni) assert.equal(info.amx, false, 'AMX is only used beside the AVX-512 VNNI kernels');
});
