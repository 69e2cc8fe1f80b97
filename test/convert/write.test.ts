/** writeConverted: atomic, loaded back before success, never over an existing model without force. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert, type ConvertedModel } from '../../src/convert/apply.js';
import type { ReplacementPlan } from '../../src/convert/plan.js';
import { writeConverted } from '../../src/convert/write.js';
import { loadModel } from '../../src/io/model-load.js';
import { buildModel } from '../../src/io/build.js';
import { castTensor } from '../../src/io/model-save.js';
import { toF32 } from '../../src/io/tensor-file.js';
import { HalfWeight } from '../../src/model/weights.js';
import { ArgumentError, FormatError } from '../../src/tensor/index.js';

const base = loadModel(new URL('../../models/stories260K', import.meta.url).pathname);
const plan: ReplacementPlan = {
  schema: 'recurformer.plan', version: 1, score: 'rr', window: 16, selection: { budget: 0.05 }, nLayers: 5, nKvGroups: 4,
  layers: [{ layer: 4, groups: [3] }], scores: [],
};

function withDir(f: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'rf-write-'));
  try {
    f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A copy of conv whose recurrent tensor `name` is replaced by `data` (or dropped). */
function broken(conv: ConvertedModel, name: string, data?: Float32Array): ConvertedModel {
  const tensors = new Map(conv.tensors);
  if (data) tensors.set(name, { ...tensors.get(name)!, data });
  else tensors.delete(name);
  return { ...conv, tensors };
}

test('a convert whose output does not load back writes nothing: no output folder, no temporary one', () => {
  withDir((dir) => {
    const conv = convert(base, plan);
    const a = 'model.layers.4.recurrent.a_log';
    for (const [bad, re] of [[broken(conv, a, new Float32Array(2).fill(NaN)), /holds non-finite values/], [broken(conv, a), /recurrent tensor missing/]] as const) {
      const out = join(dir, 'out');
      assert.throws(() => writeConverted(out, bad, plan), (e: unknown) => e instanceof FormatError && re.test(e.message), String(re));
      assert.deepEqual(readdirSync(dir), [], 'nothing is left behind');
    }
    writeConverted(join(dir, 'out'), conv, plan);
    assert.deepEqual(readdirSync(dir), ['out']);
    assert.deepEqual(loadModel(join(dir, 'out')).recurformer, conv.recurformer);
    assert.equal(JSON.parse(readFileSync(join(dir, 'out', 'plan.json'), 'utf8')).schema, 'recurformer.plan');
  });
});

test('an existing model folder is replaced only with force; a folder holding anything else or a file never', () => {
  withDir((dir) => {
    const out = join(dir, 'out');
    writeConverted(out, convert(base, plan), plan);
    const twice = { ...plan, layers: [{ layer: 4, groups: [2, 3] }] };
    assert.throws(() => writeConverted(out, convert(base, twice), twice),
      (e: unknown) => e instanceof ArgumentError && /--out .* already holds a model/.test(e.message) && /--force/.test(e.hint));
    assert.deepEqual(loadModel(out).recurformer?.layers, plan.layers, 'the refused write left the old model alone');
    writeConverted(out, convert(base, twice), twice, { force: true });
    assert.deepEqual(loadModel(out).recurformer?.layers, twice.layers);
    assert.deepEqual(readdirSync(dir), ['out'], 'the replaced model is gone, no temporary folder is left');
    const other = join(dir, 'notes');
    mkdirSync(other);
    writeFileSync(join(other, 'todo.txt'), 'keep me');
    assert.throws(() => writeConverted(other, convert(base, plan), plan, { force: true }), /holds no model/);
    assert.ok(existsSync(join(other, 'todo.txt')));
    assert.throws(() => writeConverted(join(other, 'todo.txt'), convert(base, plan), plan, { force: true }), /is a file/);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    writeConverted(empty, convert(base, plan), plan);
    assert.ok(existsSync(join(empty, 'config.json')), 'an empty folder is fine');
  });
});

test('convert writes the recurrent heads float32 whatever the dtype; 16-bit projections in a folder are read 16-bit', () => {
  withDir((dir) => {
    const conv = convert(base, plan, { calibration: Int32Array.from({ length: 32 }, (_, i) => (i * 7 + 1) % 512) });
    for (const dtype of ['BF16', 'F16', 'F32'] as const) {
      const out = join(dir, dtype);
      writeConverted(out, conv, plan, { dtype });
      const back = loadModel(out);
      for (const [name, t] of back.tensors) if (name.includes('.recurrent.')) assert.equal(t.dtype, 'F32', `${dtype}: ${name} stored`);
      assert.deepEqual(toF32(back.tensors.get('model.layers.4.recurrent.wx')!), toF32(conv.tensors.get('model.layers.4.recurrent.wx')!), `${dtype}: W_x`);
      // a folder whose projections are 16-bit (saved so by PyTorch, say) keeps them 16-bit in the model
      const sixteen = new Map([...back.tensors].map(([n, t]) => [n, /\.recurrent\.(wx|wb|wc|wdt)$/.test(n) && dtype !== 'F32' ? castTensor(t, dtype) : t]));
      const m = buildModel({ ...back, tensors: sixteen }, { dtype: 'keep' });
      for (const [name, w] of m.weights) {
        if (name.includes('.recurrent.')) assert.equal(w instanceof HalfWeight, /\.(wx|wb|wc|wdt)$/.test(name) && dtype !== 'F32', `${dtype}: ${name} held`);
      }
      assert.equal(m.recurrent.get(4)!.params.wx instanceof HalfWeight, dtype !== 'F32', `${dtype}: the recurrent heads read W_x as held`);
    }
  });
});
