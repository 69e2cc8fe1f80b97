/**
 * Training in bounded memory keeps dtypes: a BF16 teacher stays 16-bit (never widened), the student is built once
 * from the file with float32 weights of its own, and the trained model is saved in the source's type (BF16 matrices,
 * F32 recurrent heads).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildStudentModel, loadForTraining, loadTeacher, selectTrainable } from '../../src/train/model-setup.js';
import { buildModel } from '../../src/io/build.js';
import { backward, crossEntropy } from '../../src/tensor/index.js';
import { loadModel } from '../../src/io/model-load.js';
import { HalfWeight } from '../../src/model/weights.js';
import { Tensor } from '../../src/tensor/index.js';
import { fakeAnalysis, runCli } from '../helpers/cli.js';
import { settleReporter, smallCorpus, tmp } from './helpers.js';

function headerDtypes(file: string): Map<string, string> {
  const buf = readFileSync(file);
  const h = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8')) as Record<string, { dtype: string }>;
  return new Map(Object.entries(h).filter(([k]) => k !== '__metadata__').map(([k, v]) => [k, v.dtype]));
}

/** stories260K exported as BF16, and that checkpoint converted at 50% (BF16 matrices, F32 recurrent heads). */
async function bf16Converted(name: string): Promise<{ dir: string; bf16: string; conv: string }> {
  const dir = tmp(name);
  const bf16 = join(dir, 'bf16');
  assert.equal((await runCli(['export', '--format', 'hf', '--dtype', 'BF16', '--out', bf16])).code, 0);
  const a = join(dir, 'analysis.json');
  writeFileSync(a, JSON.stringify(fakeAnalysis()));
  const conv = join(dir, 'conv');
  assert.equal((await runCli(['convert', bf16, '--analysis', a, '--budget', '0.5', '--calib-tokens', '64', '--out', conv])).code, 0);
  return { dir, bf16, conv };
}

test('a BF16 teacher is kept 16-bit; the student is built once, widens only what trains, and drops the file tensors', async () => {
  const dir = tmp('dtype');
  const bf16 = join(dir, 'bf16');
  assert.equal((await runCli(['export', '--format', 'hf', '--dtype', 'BF16', '--out', bf16])).code, 0);
  const teacher = loadTeacher(bf16);
  const mats = [...teacher.weights.entries()].filter(([, w]) => w.shape.length === 2);
  assert.ok(mats.length > 0 && mats.every(([, w]) => w instanceof HalfWeight && w.kind === 'bf16'), 'every teacher matrix stays bf16');
  const { loaded, model, dtype } = loadForTraining(bf16);
  assert.equal(dtype, 'BF16');
  assert.equal(loaded.tensors.size, 0, 'no file tensors kept beside the float32 weights');
  assert.ok(loaded.tokenizer, 'the tokenizer is kept for saving');
  assert.ok([...model.weights.entries()].every(([n, w]) => w.shape.length === 1 || n.includes('.recurrent.') ? w instanceof Tensor : w instanceof HalfWeight),
    'matrices stay bf16 until selectTrainable widens the ones that train');
  selectTrainable(model, 'all');
  assert.ok([...model.weights.values()].every((w) => w instanceof Tensor), "--trainable all widens every weight");
  // F32 sources are shared, not copied: the student owns them, the LoadedModel is not reused
  const f32 = loadModel('models/stories260K');
  const emb = f32.tensors.get('model.embed_tokens.weight')!.data;
  const built = buildStudentModel(f32);
  assert.equal((built.model.weights.get('model.embed_tokens.weight') as Tensor).data.buffer, emb.buffer);
});

test('train distill from a BF16 model saves BF16 matrices and F32 recurrent heads', async () => {
  const { dir, bf16, conv } = await bf16Converted('dtype-train');
  await settleReporter();
  const out = join(dir, 'run');
  const r = await runCli(['train', conv, '--teacher', bf16, '--data', smallCorpus(20_000), '--stage', 'distill',
    '--steps', '3', '--batch', '2', '--seq', '16', '--eval-every', '0', '--out', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const dtypes = headerDtypes(join(out, 'model', 'model.safetensors'));
  for (const [name, d] of dtypes) {
    if (name.includes('.recurrent.')) assert.equal(d, 'F32', name);
    else if (name.endsWith('proj.weight') || name.endsWith('embed_tokens.weight')) assert.equal(d, 'BF16', name);
  }
  const g = await runCli(['generate', join(out, 'model'), '--temperature', '0', '--max-tokens', '5', '--json']);
  assert.equal(g.code, 0, g.stderr);
});

test('a frozen bf16 student gives the recurrent heads the gradients of the same student widened to float32', async () => {
  const { conv } = await bf16Converted('dtype-grad');
  const ids = Int32Array.from({ length: 2 * 24 }, (_, i) => (i * 37 + 11) % 512);
  const targets = Int32Array.from({ length: 2 * 24 }, (_, i) => (i * 53 + 7) % 512);
  const grads = (half: boolean): Map<string, Float32Array> => {
    const loaded = loadModel(conv);
    const m = half ? buildStudentModel(loaded).model : buildModel(loaded, { dtype: 'f32' });
    if (half) assert.ok([...m.weights.values()].some((w) => w instanceof HalfWeight));
    const { names, params } = selectTrainable(m, 'recurrent');
    backward(crossEntropy(m.forward(ids, 2, 24), targets));
    return new Map(names.map((n, i) => [n, Float32Array.from(params[i]!.grad!.data)]));
  };
  const h = grads(true), f = grads(false);
  assert.ok(h.size > 0);
  for (const [n, g] of f) {
    const got = h.get(n)!;
    let worst = 0, scale = 0;
    for (let i = 0; i < g.length; i++) {
      worst = Math.max(worst, Math.abs(g[i]! - got[i]!));
      scale = Math.max(scale, Math.abs(g[i]!));
    }
    assert.ok(scale > 0 && worst <= 1e-4 * scale + 1e-7, `${n}: worst ${worst} of ${scale}`);
  }
});
