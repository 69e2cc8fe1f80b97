/**
 * The objectives do their job on held-out data: stage 1 lowers the per-head MSE, stage 2 lowers KL and perplexity,
 * pretraining a fresh model from --init lowers validation loss. Plus the KL op's gradient, the NaN guard and the
 * trainable sets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configToHf } from '../../src/model/config.js';
import * as T from '../../src/tensor/index.js';
import { makeTrainConfig } from '../../src/train/config.js';
import { distillKL, distillKLWithMean } from '../../src/train/losses.js';
import { openRun, readMetrics, runTraining, trainStep, validate } from '../../src/train/loop.js';
import { loadForTraining, selectTrainable } from '../../src/train/model-setup.js';
import { hiddenLayers, hiddenLoss } from '../../src/train/objectives.js';
import { TapRecorder } from '../../src/model/taps.js';
import { buildModel } from '../../src/io/build.js';
import { loadModel } from '../../src/io/model-load.js';
import { TOL, assertClose } from '../helpers/tolerances.js';
import { tinyConfig } from '../helpers/random-model.js';
import { convertedModel, smallCorpus, TEACHER, tmp } from './helpers.js';

const model = convertedModel();
const data = smallCorpus(40_000);
const cache = tmp('cache');

test('distillKL: value matches the definition, gradient matches finite differences, zero at the teacher', () => {
  const rng = new T.Rng(3);
  const s = T.randn([2, 3, 7], rng, 2), t = T.randn([2, 3, 7], rng, 2);
  const tau = 1.7;
  const lq = T.logSoftmax(T.affine(s, 1 / tau)).data, lp = T.logSoftmax(T.affine(t, 1 / tau)).data;
  let ref = 0;
  for (let i = 0; i < lq.length; i++) ref += Math.exp(lp[i]!) * (lp[i]! - lq[i]!);
  ref = (tau * tau * ref) / 6;
  assertClose(distillKL(s, t, tau).item(), ref, TOL.crossEntropy, 'KL value');
  assert.ok(Math.abs(distillKL(t, t, tau).item()) < 1e-6);
  const sp = s.detach().param();
  T.backward(distillKL(sp, t, tau));
  const h = 1e-2;
  for (const i of [0, 5, 17, 40]) {
    const at = (d: number): number => {
      const x = T.tensor(Float32Array.from(s.data), s.shape);
      x.data[i] = x.data[i]! + d;
      return distillKL(x, t, tau).item();
    };
    assertClose(sp.grad!.data[i]!, (at(h) - at(-h)) / (2 * h), TOL.finiteDiff, `dKL/ds[${i}]`);
  }
});

test('distillKL with focus: rows weighted by (KL_r / mean)^gamma at mean 1, gradient through the KL only', () => {
  const rng = new T.Rng(5);
  const s = T.randn([2, 3, 7], rng, 2), t = T.randn([2, 3, 7], rng, 2);
  const tau = 1.3, gamma = 1.5, rows = 6, V = 7;
  const rowOf = (x: Float32Array, r: number): T.Tensor => T.tensor(Float32Array.from(x.subarray(r * V, (r + 1) * V)), [1, 1, V]);
  const kls = Array.from({ length: rows }, (_, r) => distillKL(rowOf(s.data, r), rowOf(t.data, r), tau).item());
  const mean = kls.reduce((a, b) => a + b, 0) / rows;
  const raw = kls.map((k) => (k / mean) ** gamma);
  const w = raw.map((x) => (x * rows) / raw.reduce((a, b) => a + b, 0));
  assertClose(distillKL(s, t, tau, gamma).item(), kls.reduce((a, k, r) => a + w[r]! * k, 0) / rows, TOL.crossEntropy, 'focused KL value');
  assertClose(distillKL(s, t, tau, 0).item(), mean, TOL.crossEntropy, 'focus 0 is the plain mean');
  // the same pass reports the plain mean next to the focused loss (what training logs as `kl`)
  const both = distillKLWithMean(s, t, tau, gamma);
  assert.equal(both.mean, distillKL(s, t, tau).item(), 'the plain mean equals the unfocused loss exactly');
  assert.equal(both.loss.item(), distillKL(s, t, tau, gamma).item());
  // the worst-imitated row outweighs the best one
  const worst = kls.indexOf(Math.max(...kls)), best = kls.indexOf(Math.min(...kls));
  assert.ok(w[worst]! > 1 && w[best]! < 1, `weights ${w.map((x) => x.toFixed(2)).join(', ')}`);
  const sp = s.detach().param();
  T.backward(distillKL(sp, t, tau, gamma));
  const h = 1e-2;
  for (const i of [0, 9, 20, 41]) {
    const r = Math.floor(i / V);
    const at = (d: number): number => {
      const x = Float32Array.from(s.data);
      x[i] = x[i]! + d;
      return distillKL(rowOf(x, r), rowOf(t.data, r), tau).item();
    };
    // the weights are constants: d/ds_i = w_r / rows * dKL_r/ds_i
    assertClose(sp.grad!.data[i]!, ((w[r]! / rows) * (at(h) - at(-h))) / (2 * h), TOL.finiteDiff, `dfocusedKL/ds[${i}]`);
  }
  assert.throws(() => distillKL(s, t, tau, -1), /focus/);
});

test('stage 1 (align) lowers the per-head MSE on held-out data; only recurrent tensors change', async () => {
  const out = tmp('align');
  const r = await runTraining({ stage: 'align', model, teacher: TEACHER, data, cacheDir: cache, steps: 30, batch: 4, seq: 32,
    lr: 1e-2, warmup: 3, evalEvery: 0, evalBatches: 2, saveEvery: 0, out });
  assert.ok(r.lastEval!.loss < 0.5 * r.firstEval!.loss, `held-out MSE ${r.firstEval!.loss} -> ${r.lastEval!.loss}`);
  const before = loadModel(model), after = loadModel(join(out, 'model'));
  for (const [n, t] of before.tensors) {
    const a = t.data as Float32Array, b = after.tensors.get(n)!.data as Float32Array;
    const same = a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
    assert.equal(same, !n.includes('.recurrent.'), `${n} ${same ? 'unchanged' : 'changed'}`);
  }
});

test('stage 2 (distill) lowers KL and perplexity on held-out data', async () => {
  const r = await runTraining({ stage: 'distill', model, teacher: TEACHER, data, cacheDir: cache, steps: 30, batch: 4, seq: 32,
    lr: 1e-2, warmup: 3, evalEvery: 0, evalBatches: 2, saveEvery: 0, out: tmp('distill') });
  assert.ok(r.lastEval!.kl! < 0.7 * r.firstEval!.kl!, `KL ${r.firstEval!.kl} -> ${r.lastEval!.kl}`);
  assert.ok(r.lastEval!.ppl < 0.7 * r.firstEval!.ppl, `ppl ${r.firstEval!.ppl} -> ${r.lastEval!.ppl}`);
});

test('hidden-state match: the definition, zero at the teacher, gradient matches finite differences', () => {
  const { model: student } = loadForTraining(model);
  const { model: teacher } = loadForTraining(TEACHER);
  const cfg = student.cfg;
  const first = Math.min(...student.recurrent.keys());
  const layers = hiddenLayers(student);
  assert.deepEqual(layers, Array.from({ length: cfg.nLayers - first - 1 }, (_, i) => first + 1 + i));
  assert.ok(layers.length >= 1, `replaced layers ${[...student.recurrent.keys()].join(',')}`);
  const B = 2, Tn = 24;
  const ids = Int32Array.from({ length: B * Tn }, (_, i) => (i * 37 + 5) % cfg.vocabSize);
  const taps = (): TapRecorder => new TapRecorder((n) => /^blk\.\d+\.in$/.test(n));
  const tt = taps();
  T.noGrad(() => teacher.forward(ids, B, Tn, { taps: tt }));
  const streams = (): TapRecorder => {
    const st = taps();
    T.noGrad(() => student.forward(ids, B, Tn, { taps: st }));
    return st;
  };
  const st = streams();
  // by hand: both streams through the student's input RMSNorm of each block, |a - b|^2 / |b|^2, mean over blocks
  let ref = 0;
  for (const l of layers) {
    const g = student.weights.get(`model.layers.${l}.input_layernorm.weight`)!.data as Float32Array;
    const rows = (x: Float32Array): Float64Array => {
      const out = new Float64Array(x.length), D = cfg.dModel;
      for (let r = 0; r < x.length / D; r++) {
        let ms = 0;
        for (let k = 0; k < D; k++) ms += x[r * D + k]! ** 2;
        const inv = 1 / Math.sqrt(ms / D + cfg.normEps);
        for (let k = 0; k < D; k++) out[r * D + k] = x[r * D + k]! * inv * g[k]!;
      }
      return out;
    };
    const a = rows(st.values.get(`blk.${l}.in`)!.data as Float32Array), b = rows(tt.values.get(`blk.${l}.in`)!.data as Float32Array);
    let num = 0, den = 0;
    for (let i = 0; i < a.length; i++) {
      num += (a[i]! - b[i]!) ** 2;
      den += b[i]! ** 2;
    }
    ref += num / den / layers.length;
  }
  const value = T.noGrad(() => hiddenLoss(student, layers, st, tt).item());
  assertClose(value, ref, { rtol: 1e-4, atol: 1e-7 }, 'hidden loss value');
  assert.ok(value > 1e-4, `the converted student's streams differ from the teacher's (${value})`);
  assert.equal(T.noGrad(() => hiddenLoss(student, layers, tt, tt).item()), 0, 'zero when the streams are the teacher\'s');
  // gradient with respect to a recurrent weight of the first replaced layer (it moves every later stream)
  selectTrainable(student, 'recurrent');
  const name = `model.layers.${first}.recurrent.wx`;
  const w = student.weights.get(name) as T.Tensor;
  const sg = taps();
  const loss = hiddenLoss(student, layers, (student.forward(ids, B, Tn, { taps: sg }), sg), tt);
  T.backward(loss);
  const grad = Float32Array.from(w.grad!.data);
  const top = [...grad.keys()].sort((i, j) => Math.abs(grad[j]!) - Math.abs(grad[i]!)).slice(0, 4);
  const h = 1e-2;
  for (const i of top) {
    const at = (d: number): number => {
      const old = w.data[i]!;
      w.data[i] = old + d;
      const v = T.noGrad(() => hiddenLoss(student, layers, streams(), tt).item());
      w.data[i] = old;
      return v;
    };
    assertClose(grad[i]!, (at(h) - at(-h)) / (2 * h), TOL.finiteDiff, `d hidden / d ${name}[${i}]`);
  }
});

test('distill with --hidden-weight: the objective includes the stream match and training lowers it', async () => {
  const out = tmp('hidden');
  const r = await runTraining({ stage: 'distill', model, teacher: TEACHER, data, cacheDir: cache, steps: 30, batch: 4, seq: 32,
    lr: 1e-2, warmup: 3, evalEvery: 0, evalBatches: 2, saveEvery: 0, hiddenWeight: 2, out });
  // with tau = 1 and no CE the validation objective is KL + 2 * hidden
  const hidden = (e: { loss: number; kl?: number }): number => (e.loss - e.kl!) / 2;
  assert.ok(hidden(r.firstEval!) > 1e-3, `held-out hidden term ${hidden(r.firstEval!)}`);
  assert.ok(hidden(r.lastEval!) < 0.85 * hidden(r.firstEval!), `held-out hidden term ${hidden(r.firstEval!)} -> ${hidden(r.lastEval!)}`);
  assert.ok(r.lastEval!.kl! < 0.7 * r.firstEval!.kl!, `KL ${r.firstEval!.kl} -> ${r.lastEval!.kl}`);
  // the same run without the term ends with streams farther from the teacher's (measured on the same fixed batch)
  const plain = tmp('plain');
  await runTraining({ stage: 'distill', model, teacher: TEACHER, data, cacheDir: cache, steps: 30, batch: 4, seq: 32,
    lr: 1e-2, warmup: 3, evalEvery: 0, evalBatches: 2, saveEvery: 0, out: plain });
  const { model: teacher } = loadForTraining(TEACHER);
  const ids = Int32Array.from({ length: 4 * 32 }, (_, i) => (i * 53 + 7) % teacher.cfg.vocabSize);
  const streamGap = (dir: string): number => T.noGrad(() => {
    const { model: m } = loadForTraining(join(dir, 'model'));
    const st = new TapRecorder((n) => n.endsWith('.in')), tt = new TapRecorder((n) => n.endsWith('.in'));
    m.forward(ids, 4, 32, { taps: st });
    teacher.forward(ids, 4, 32, { taps: tt });
    return hiddenLoss(m, hiddenLayers(m), st, tt).item();
  });
  const withTerm = streamGap(out), without = streamGap(plain);
  assert.ok(withTerm < 0.9 * without, `stream gap with the term ${withTerm}, without ${without}`);
  const steps = readMetrics(out).filter((m) => m.type === 'train') as { parts: Record<string, number> }[];
  assert.equal(steps.length, 30);
  assert.ok(steps.every((m) => m.parts.hidden! > 0), 'every step logs its hidden term');
  assert.throws(() => makeTrainConfig({ data, out, model, teacher: TEACHER, hiddenWeight: -1 }), /hiddenWeight/);
});

test('pretraining a fresh model from --init drives validation loss down steadily', async () => {
  const dir = tmp('init');
  const init = join(dir, 'config.json');
  const cfg = tinyConfig('llama', { vocabSize: 512, dModel: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 8, ffnDim: 64 });
  writeFileSync(init, JSON.stringify(configToHf(cfg)));
  const out = join(dir, 'run');
  const r = await runTraining({ stage: 'pretrain', init, tokenizer: TEACHER, data, cacheDir: cache, steps: 60, batch: 4, seq: 64,
    lr: 1e-2, warmup: 5, evalEvery: 20, evalBatches: 2, saveEvery: 0, out });
  assert.equal(r.config.trainable, 'all');
  const evals = readMetrics(out).filter((m) => m.type === 'eval').map((m) => m.loss); // steps 0, 20, 40, 60
  assert.equal(evals.length, 4);
  assert.ok(r.lastEval!.loss < r.firstEval!.loss - 1.0, `val loss ${r.firstEval!.loss} -> ${r.lastEval!.loss}`);
  for (let i = 1; i < evals.length; i++) assert.ok(evals[i]! < evals[i - 1]!, `val losses decrease: ${evals.join(', ')}`);
  const saved = loadModel(join(out, 'model'));
  assert.equal(saved.config.dModel, 32);
  assert.ok(saved.tokenizer, 'the tokenizer is copied next to the pretrained model');
});

test('NaN guard: a non-finite loss skips the step (no update) and is reported', () => {
  const s = openRun(makeTrainConfig({ stage: 'distill', model, teacher: TEACHER, data, cacheDir: cache, steps: 5, batch: 2,
    seq: 16, out: tmp('nan') }));
  const p = s.params[0]!;
  const other = s.params[1]!;
  const before = Float32Array.from(other.data);
  p.data[0] = NaN;
  const r = trainStep(s);
  assert.equal(r.type, 'skip');
  assert.equal(s.skipped, 1);
  assert.equal(s.opt.state.step, 0, 'the optimizer did not step');
  assert.deepEqual(other.data, before);
  assert.ok(s.params.every((q) => q.grad === null), 'gradients are dropped');
});

test('trainable sets: recurrent, recurrent+norms, all; a plain model has no recurrent set', () => {
  const conv = buildModel(loadModel(model));
  const rec = selectTrainable(conv, 'recurrent').names;
  assert.ok(rec.length > 0 && rec.every((n) => n.includes('.recurrent.')));
  const withNorms = selectTrainable(conv, 'recurrent+norms').names;
  assert.ok(withNorms.some((n) => n.endsWith('input_layernorm.weight')) && withNorms.some((n) => n === 'model.norm.weight'));
  assert.ok(!withNorms.some((n) => n.endsWith('proj.weight')));
  assert.equal(selectTrainable(conv, 'all').names.length, conv.weights.size);
  assert.throws(() => selectTrainable(buildModel(loadModel(TEACHER)), 'recurrent'), /no recurrent heads/);
  assert.throws(() => makeTrainConfig({ data, out: 'x', stage: 'distill', model }), /teacher/);
  assert.throws(() => makeTrainConfig({ data, out: 'x', stage: 'pretrain', init: 'c.json', bogus: 1 }), /bogus is not a training option/);
});

test('GPT-2 pretraining round trip: the saved HF folder (Conv1D layout) reproduces the final validation loss', async () => {
  const dir = tmp('gpt2');
  const init = join(dir, 'config.json');
  writeFileSync(init, JSON.stringify(configToHf(tinyConfig('gpt2', { vocabSize: 512, bosId: 1, eosId: [2] }))));
  const base = { stage: 'pretrain', data, cacheDir: cache, batch: 4, seq: 32, evalBatches: 2 };
  const r = await runTraining({ ...base, init, tokenizer: TEACHER, steps: 20, lr: 1e-2, evalEvery: 0, saveEvery: 0, out: join(dir, 'run') });
  assert.ok(r.lastEval!.loss < r.firstEval!.loss);
  const again = validate(openRun(makeTrainConfig({ ...base, model: r.modelDir, out: join(dir, 'again') })));
  assertClose(again.loss, r.lastEval!.loss, TOL.parity, 'val loss of the reloaded model');
});

test('gradient accumulation: 2 micro-batches of B equal one batch of 2B (same sequences, same update)', () => {
  const common = { stage: 'distill', model, teacher: TEACHER, data, cacheDir: cache, steps: 3, seq: 16, lr: 1e-2, warmup: 0, clip: 0 };
  const a = openRun(makeTrainConfig({ ...common, batch: 2, accum: 2, out: tmp('acc2') }));
  const b = openRun(makeTrainConfig({ ...common, batch: 4, accum: 1, out: tmp('acc1') }));
  const ra = trainStep(a), rb = trainStep(b);
  assert.equal(ra.type, 'train');
  assertClose(ra.loss, rb.loss, TOL.parity, 'loss');
  assertClose(ra.gradNorm, rb.gradNorm, TOL.parity, 'gradient norm (Adam normalizes the first update, so check it too)');
  a.params.forEach((p, i) => assertClose(p.data, b.params[i]!.data, TOL.parity, a.names[i]!));
});
