/**
 * The TypeScript side of the PyTorch parity tests (python/tests/): runs the src/ library on a request and writes
 * raw float32 results the tests compare with. Run with `node --import tsx python/tests/ts_ref.ts REQUEST.json`.
 *
 * Request (JSON): { op, model, out, ... }
 *   op 'prefill'   ids (B*T ints), B, T: logits of model.forward without memory -> out (B*T*V float32)
 *   op 'generate'  prompt (ids), steps, windows? ({sinks, window}: StreamingLLM memory): the prompt in one forward
 *                  with a memory, then `steps` greedy tokens one at a time; out gets each step's last logits
 *                  ((steps + 1) * V float32), stdout {ids}
 *   op 'tensors'   every tensor of the folder as loaded (loadModel), widened to float32 -> out: a JSON index
 *                  {name: {dtype, shape, offset}} at out.json and the bits (raw stored bytes) at out
 *   op 'roundtrip' load the folder and write it again (writeHfFolder, dtype keep) to `dest`
 *   op 'shard'     data, cacheDir: the token shard the TS data pipeline writes for the model's tokenizer, stdout {path, key}
 *   op 'align' / 'distill'  teacher, batch {inputs, targets, B, T}, options: the objective's loss and the gradients
 *                  of the recurrent tensors -> out (float32, in `names` order), stdout {loss, names, shapes}
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { buildModel, fullMemory, loadModel, streamingMemory, writeHfFolder } from '../../src/index.js';
import * as T from '../../src/tensor/index.js';
import { objective } from '../../src/train/objectives.js';
import { loadForTraining, loadTeacher, selectTrainable } from '../../src/train/model-setup.js';
import { storedFloatDtype } from '../../src/io/model-save.js';
import { loadShard } from '../../src/train/data.js';

interface Req {
  op: string;
  model: string;
  out?: string;
  ids?: number[];
  B?: number;
  T?: number;
  prompt?: number[];
  steps?: number;
  windows?: { sinks: number; window: number };
  dest?: string;
  data?: string;
  cacheDir?: string;
  teacher?: string;
  batch?: { inputs: number[]; targets: number[]; B: number; T: number };
  options?: { stage: 'align' | 'distill'; temperature: number; ceWeight: number; klFocus?: number; hiddenWeight?: number };
}

const req = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Req;
const f32bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

if (req.op === 'prefill') {
  const model = buildModel(loadModel(req.model));
  const logits = T.noGrad(() => model.forward(Int32Array.from(req.ids!), req.B!, req.T!));
  writeFileSync(req.out!, f32bytes(T.contiguous(logits).data));
} else if (req.op === 'generate') {
  const model = buildModel(loadModel(req.model));
  const mem = req.windows ? streamingMemory(model, req.windows) : fullMemory(model);
  const V = model.cfg.vocabSize;
  const out = new Float32Array((req.steps! + 1) * V);
  const ids: number[] = [];
  T.noGrad(() => {
    const p = req.prompt!;
    let last = T.contiguous(model.forward(Int32Array.from(p), 1, p.length, { memory: mem, lastOnly: true })).data.slice(-V);
    for (let s = 0; s <= req.steps!; s++) {
      out.set(last, s * V);
      if (s === req.steps) break;
      const id = argmax(last);
      ids.push(id);
      last = Float32Array.from(T.contiguous(model.forward(Int32Array.of(id), 1, 1, { memory: mem })).data);
    }
  });
  writeFileSync(req.out!, f32bytes(out));
  process.stdout.write(JSON.stringify({ ids }));
} else if (req.op === 'tensors') {
  const lm = loadModel(req.model);
  const index: Record<string, { dtype: string; shape: number[]; offset: number; bytes: number }> = {};
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of lm.tensors) {
    const d = t.data;
    const b = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    index[name] = { dtype: t.dtype, shape: [...t.shape], offset, bytes: b.byteLength };
    chunks.push(Buffer.from(b));
    offset += b.byteLength;
  }
  writeFileSync(req.out!, Buffer.concat(chunks));
  writeFileSync(`${req.out!}.json`, JSON.stringify(index));
} else if (req.op === 'roundtrip') {
  const lm = loadModel(req.model);
  writeHfFolder(req.dest!, { ...lm, ...(lm.recurformer ? { recurformer: lm.recurformer } : {}) }, storedFloatDtype(lm.tensors));
} else if (req.op === 'align' || req.op === 'distill') {
  const { model: student } = loadForTraining(req.model);
  const teacher = loadTeacher(req.teacher!);
  const { names, params } = selectTrainable(student, 'recurrent');
  const b = req.batch!;
  const batch = { inputs: Int32Array.from(b.inputs), targets: Int32Array.from(b.targets), B: b.B, T: b.T };
  const out = objective(student, teacher, batch, { ...req.options!, stage: req.op });
  const loss = out.loss.item();
  T.backward(out.loss);
  const grads = params.map((p) => T.contiguous(p.grad!).data);
  writeFileSync(req.out!, Buffer.concat(grads.map((g) => Buffer.from(f32bytes(g)))));
  process.stdout.write(JSON.stringify({ loss, parts: out.parts, names, shapes: params.map((p) => [...p.shape]) }));
} else if (req.op === 'shard') {
  const tok = loadModel(req.model).tokenizer!;
  const shard = loadShard(req.data!, tok, req.cacheDir!);
  process.stdout.write(JSON.stringify({ path: shard.path, key: shard.key, tokens: shard.tokens.length }));
} else {
  throw new Error(`ts_ref: unknown op ${req.op}`);
}
