/**
 * Teacher agreement: a model against itself agrees exactly (match 1, KL 0); the per-position KL equals a brute-force
 * float64 softmax computation; a perturbed model disagrees (KL > 0, match < 1); a streaming baseline on the original
 * model is compared with full attention as the teacher.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { load } from '../../src/cli/common.js';
import { agreement, klRow } from '../../src/eval/agree.js';
import { streamingMemory } from '../../src/inference/hybrid-memory.js';
import { buildModel } from '../../src/io/build.js';
import type { LoadedModel } from '../../src/io/model-load.js';
import { ArgumentError, Rng, noGrad, scope } from '../../src/tensor/index.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { TOL, assertClose } from '../helpers/tolerances.js';

const { loaded, model } = load(undefined);
const TEXT = readFileSync(new URL('../../data/tinystories-valid-excerpt/tinystories_val.txt', import.meta.url), 'utf8').slice(0, 2000);
const IDS = loaded.tokenizer!.encode(TEXT, { bos: true });

/** A copy of `m` with N(0, std) noise added to every float32 tensor. */
function perturbed(m: LoadedModel, std: number, seed = 1): LoadedModel {
  const rng = new Rng(seed);
  const tensors = new Map([...m.tensors].map(([k, t]) => [k, { ...t, data: Float32Array.from(t.data as Float32Array, (x) => x + rng.normal() * std) }]));
  return { ...m, tensors };
}

/** KL(softmax(t) || softmax(s)) straight from the definition, float64. */
function klNaive(t: readonly number[], s: readonly number[]): number {
  const soft = (z: readonly number[]): number[] => {
    const e = z.map((x) => Math.exp(x));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / sum);
  };
  const p = soft(t), q = soft(s);
  return p.reduce((acc, pv, v) => acc + pv * Math.log(pv / q[v]!), 0);
}

test('a model against itself: match 1 and KL 0 exactly, equal top-1', () => {
  const r = agreement(model, model, IDS, { ctx: 128 });
  assert.equal(r.match, 1);
  assert.equal(r.kl, 0);
  assert.equal(r.maxKl, 0);
  assert.equal(r.studentTop1, r.teacherTop1);
  assert.equal(r.tokens, IDS.length - 1);
  assert.ok(r.teacherTop1 > 0.3 && r.teacherTop1 < 1, `top-1 ${r.teacherTop1}`);
});

test('klRow equals the brute-force softmax KL; agreement averages it over positions', () => {
  const rng = new Rng(5);
  const V = 7;
  const t = Float32Array.from({ length: 3 * V }, () => rng.normal() * 2);
  const s = Float32Array.from({ length: 2 * V }, () => rng.normal() * 2);
  assertClose(klRow(t, 2 * V, s, V, V), klNaive([...t.subarray(2 * V)], [...s.subarray(V)]), TOL.double, 'klRow');
  assert.equal(klRow(t, V, t, V, V), 0);
  // whole pipeline on a tiny model pair: mean over positions of the naive KL of the two models' logits
  const a = randomModel(tinyConfig('llama'), 2);
  const sm = buildModel(a), tm = buildModel(perturbed(a, 0.05));
  const ids = Array.from({ length: 25 }, (_, i) => (i * 11 + 1) % sm.cfg.vocabSize);
  const logits = (m: typeof sm): Float32Array => noGrad(() => scope(() => Float32Array.from(m.forward(Int32Array.from(ids.slice(0, 24)), 1, 24).data)));
  const ls = logits(sm), lt = logits(tm);
  let want = 0;
  for (let p = 0; p < 24; p++) want += klNaive([...lt.subarray(p * sm.cfg.vocabSize, (p + 1) * sm.cfg.vocabSize)], [...ls.subarray(p * sm.cfg.vocabSize, (p + 1) * sm.cfg.vocabSize)]);
  assertClose(agreement(sm, tm, ids, { ctx: 24 }).kl, want / 24, TOL.norm, 'mean KL');
});

test('a perturbed model disagrees: KL > 0 and match < 1', () => {
  const student = buildModel(perturbed(loaded, 0.02));
  const r = agreement(student, model, IDS, { ctx: 128 });
  assert.ok(r.kl > 0 && Number.isFinite(r.kl), `KL ${r.kl}`);
  assert.ok(r.match < 1 && r.match > 0.3, `match ${r.match}`);
  assert.ok(r.maxKl >= r.kl);
});

test('StreamingLLM on the original model against itself with full attention: exact inside the window, lossy beyond', () => {
  const wide = agreement(model, model, IDS, { ctx: 128, memory: (m) => streamingMemory(m, { sinks: 4, window: 200 }), block: 32 });
  assert.ok(wide.match === 1 && wide.kl < 1e-6, `a window longer than ctx: KL ${wide.kl}`);
  const narrow = agreement(model, model, IDS, { ctx: 128, memory: (m) => streamingMemory(m, { sinks: 4, window: 16 }), block: 32 });
  assert.ok(narrow.kl > 1e-3 && narrow.match < 1, `window 16: KL ${narrow.kl}, match ${narrow.match}`);
});

test('teachers with another vocabulary are an ArgumentError', () => {
  const other = buildModel(randomModel(tinyConfig('llama'), 1));
  assert.throws(() => agreement(model, other, IDS, { ctx: 64 }), (e) => e instanceof ArgumentError && /vocabulary/.test(e.message));
});
