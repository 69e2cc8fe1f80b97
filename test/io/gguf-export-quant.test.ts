/**
 * Quantized GGUF export (`export --format gguf --dtype Q8_0|Q4_K|Q6_K|Q4_K_M`): which tensor gets which type,
 * general.file_type as llama.cpp's enum, weights within each type's error bound after a round trip, and models that
 * load back and generate: stories260K (dModel 64, so every row falls back from the K-quants) and a random Llama with
 * dims that are multiples of 256.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { gguf as hfGguf } from '@huggingface/gguf';
import { loadModel, type LoadedModel } from '../../src/io/model-load.js';
import { writeGgufModel } from '../../src/io/model-save.js';
import { readGguf } from '../../src/io/gguf.js';
import { GgmlType } from '../../src/io/ggml-quants.js';
import { type GgufExportType } from '../../src/io/kquants-mix.js';
import { toF32 } from '../../src/io/tensor-file.js';
import { buildModel } from '../../src/io/build.js';
import { generateIds } from '../../src/inference/generate.js';
import { noGrad } from '../../src/tensor/index.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from './tmp.js';
import { relRms } from '../helpers/tolerances.js';

const dir = tempDir('gguf-export-quant');
const HF = 'models/stories260K';

const typesOf = (path: string): Record<string, string> =>
  Object.fromEntries(readGguf(path, { tensors: false }).tensorInfos.map((t) => [t.name, GgmlType[t.type]!]));

const meta = (path: string, key: string): unknown => readGguf(path, { tensors: false }).metadata.get(key)?.value;

function lastLogits(m: LoadedModel, ids: number[]): Float32Array {
  const lm = buildModel(m);
  const V = m.config.vocabSize;
  return noGrad(() => Float32Array.from(lm.forward(Int32Array.from(ids), 1, ids.length).data.subarray((ids.length - 1) * V)));
}

test('stories260K at Q4_K_M: rows of 64 and 172 fall back as llama.cpp does (Q8_0 head, Q5_0, F16), loads back and generates', async () => {
  const src = loadModel(HF);
  const path = join(dir, 'stories260K-q4km.gguf');
  writeGgufModel(path, src, 'Q4_K_M', 'stories260K');
  const types = typesOf(path);
  // tied embedding = output: Q6_K wanted, a row of 64 is no multiple of 256 -> Q8_0
  assert.equal(types['token_embd.weight'], 'Q8_0');
  assert.equal(types['output_norm.weight'], 'F32');
  for (let l = 0; l < 5; l++) {
    const g = (n: string) => types[`blk.${l}.${n}.weight`];
    // use_more_bits(l, 5) for layers 2 and 4: attn_v wants Q6_K -> Q8_0; the others want Q4_K -> Q5_0 (64 % 32 == 0)
    assert.equal(g('attn_v'), [2, 4].includes(l) ? 'Q8_0' : 'Q5_0', `attn_v ${l}`);
    for (const n of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up']) assert.equal(g(n), 'Q5_0', `${n} ${l}`);
    // ffn_down rows are 172 long: no 32-block fits -> F16
    assert.equal(g('ffn_down'), 'F16');
    assert.equal(g('attn_norm'), 'F32');
    assert.equal(g('ffn_norm'), 'F32');
  }
  assert.equal(meta(path, 'general.file_type'), 15); // LLAMA_FTYPE_MOSTLY_Q4_K_M
  assert.equal(meta(path, 'general.quantization_version'), 2);
  // the independent reader sees the same types
  const oracle = await hfGguf(path, { allowLocalFile: true });
  for (const t of oracle.tensorInfos) assert.equal(GgmlType[t.dtype], types[t.name], t.name);
  assert.equal(Number(oracle.metadata['general.file_type' as keyof typeof oracle.metadata]), 15);

  const back = loadModel(path);
  assert.deepEqual(back.config, src.config);
  for (const [name, t] of src.tensors) {
    const err = relRms(toF32(t), toF32(back.tensors.get(name)!));
    assert.ok(err < (name.includes('down_proj') ? 1e-3 : name.includes('norm') ? 1e-9 : 0.06), `${name}: ${err}`);
  }
  const prompt = src.tokenizer!.encode('Once upon a time', { bos: true });
  const want = generateIds(buildModel(src), prompt, src.tokenizer, { maxTokens: 20, temperature: 0 });
  const got = generateIds(buildModel(back), prompt, back.tokenizer, { maxTokens: 20, temperature: 0 });
  assert.equal(got.ids.length, 20);
  assert.deepEqual(got.ids.slice(0, 10), want.ids.slice(0, 10), `${got.text} vs ${want.text}`);
});

/** Relative RMS bound of each stored type on N(0, 0.02) weights. */
const TOL: Record<string, number> = { Q8_0: 0.008, Q6_K: 0.02, Q5_0: 0.05, Q4_K: 0.1, F16: 1e-3, F32: 0 };

test('a random Llama with dims multiple of 256: each export type stores the planned types, within their error, and generates', () => {
  // 8 layers (use_more_bits: layers 0, 3, 6, 7), untied head, the stories260K SentencePiece vocabulary (512)
  const cfg = tinyConfig('llama', { vocabSize: 512, dModel: 256, nLayers: 8, nHeads: 4, nKvHeads: 2, headDim: 64, ffnDim: 256, bosId: 1, eosId: [2] });
  const src: LoadedModel = { ...randomModel(cfg, 5, 0.02), tokenizer: loadModel(HF).tokenizer };
  const prompt = src.tokenizer!.encode('Once upon a time', { bos: true });
  const ref = lastLogits(src, prompt);
  const expect: Record<GgufExportType, (gguf: string) => string> = {
    F32: () => 'F32',
    F16: () => 'F16',
    Q8_0: () => 'Q8_0',
    Q6_K: () => 'Q6_K',
    Q4_K: () => 'Q4_K',
    Q4_K_M: (n) => {
      if (n === 'output.weight') return 'Q6_K';
      const l = Number(/^blk\.(\d+)\./.exec(n)?.[1] ?? -1);
      return /attn_v|ffn_down/.test(n) && [0, 3, 6, 7].includes(l) ? 'Q6_K' : 'Q4_K';
    },
  };
  const fileType: Record<GgufExportType, number> = { F32: 0, F16: 1, Q8_0: 7, Q4_K: 14, Q4_K_M: 15, Q6_K: 18 };
  // last-position logits vs the F32 model (a random 8-layer model amplifies weight error about 3x; measured: Q8_0
  // 0.018, Q6_K 0.047, Q4_K 0.23, Q4_K_M 0.21)
  const logitTol: Record<GgufExportType, number> = { F32: 1e-6, F16: 5e-3, Q8_0: 0.03, Q6_K: 0.08, Q4_K_M: 0.35, Q4_K: 0.35 };
  const logitErr: Partial<Record<GgufExportType, number>> = {};
  for (const ftype of ['Q8_0', 'Q6_K', 'Q4_K', 'Q4_K_M'] as const) {
    const path = join(dir, `random-${ftype}.gguf`);
    writeGgufModel(path, src, ftype);
    const types = typesOf(path);
    for (const [name, type] of Object.entries(types)) {
      assert.equal(type, /norm/.test(name) ? 'F32' : expect[ftype](name), `${ftype} ${name}`);
    }
    assert.equal(meta(path, 'general.file_type'), fileType[ftype]);
    assert.equal(meta(path, 'general.quantization_version'), 2);
    const back = loadModel(path);
    // per tensor: the error bound of the type it was stored in (names differ: compare through the HF names)
    const hfToGgufName = (hf: string) => hf === 'model.embed_tokens.weight' ? 'token_embd.weight' : hf === 'lm_head.weight' ? 'output.weight'
      : hf === 'model.norm.weight' ? 'output_norm.weight'
        : hf.replace(/^model\.layers\.(\d+)\./, 'blk.$1.').replace('input_layernorm', 'attn_norm').replace('post_attention_layernorm', 'ffn_norm')
          .replace('self_attn.q_proj', 'attn_q').replace('self_attn.k_proj', 'attn_k').replace('self_attn.v_proj', 'attn_v')
          .replace('self_attn.o_proj', 'attn_output').replace('mlp.gate_proj', 'ffn_gate').replace('mlp.up_proj', 'ffn_up').replace('mlp.down_proj', 'ffn_down');
    for (const [name, t] of src.tensors) {
      const stored = types[hfToGgufName(name)]!;
      assert.ok(stored, name);
      const err = relRms(toF32(t), toF32(back.tensors.get(name)!));
      assert.ok(err <= TOL[stored]!, `${ftype} ${name} (${stored}): relative RMS ${err}`);
    }
    const err = relRms(ref, lastLogits(back, prompt));
    assert.ok(err < logitTol[ftype], `${ftype}: logits relative RMS ${err}`);
    logitErr[ftype] = err;
    const gen = generateIds(buildModel(back), prompt, back.tokenizer, { maxTokens: 8, temperature: 0 });
    assert.equal(gen.ids.length, 8);
    assert.ok(gen.ids.every((id) => id >= 0 && id < cfg.vocabSize));
  }
  // the mix spends its extra bits where they count: closer than pure Q4_K, farther than all-Q6_K
  assert.ok(logitErr.Q4_K_M! < logitErr.Q4_K! && logitErr.Q4_K_M! > logitErr.Q6_K!, JSON.stringify(logitErr));
});

test('F32 and F16 exports keep their file types (0, 1) and write no quantization version', () => {
  const src = loadModel(HF);
  for (const [dtype, ft] of [['F32', 0], ['F16', 1]] as const) {
    const path = join(dir, `s-${dtype}.gguf`);
    writeGgufModel(path, src, dtype);
    assert.equal(meta(path, 'general.file_type'), ft);
    assert.equal(meta(path, 'general.quantization_version'), undefined);
  }
});

test('CLI: export --format gguf --dtype q4_k_m / Q8_0 writes quantized files; unknown or HF-incompatible types are refused', async () => {
  const out = join(dir, 'cli-q4km.gguf');
  const r = await runCli(['export', HF, '--format', 'gguf', '--dtype', 'q4_k_m', '--out', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { dtype: string }).dtype, 'Q4_K_M');
  assert.equal(meta(out, 'general.file_type'), 15);
  const q8 = join(dir, 'cli-q8.gguf');
  assert.equal((await runCli(['export', HF, '--format', 'gguf', '--dtype', 'Q8_0', '--out', q8])).code, 0);
  assert.equal(typesOf(q8)['blk.0.attn_q.weight'], 'Q8_0');
  const bad = await runCli(['export', HF, '--format', 'gguf', '--dtype', 'Q3_K', '--out', join(dir, 'bad.gguf')]);
  assert.notEqual(bad.code, 0);
  assert.ok(bad.stderr.includes('Q4_K_M') && bad.stderr.includes('Q3_K'), bad.stderr);
  const hf = await runCli(['export', HF, '--format', 'hf', '--dtype', 'Q4_K', '--out', join(dir, 'bad-hf')]);
  assert.notEqual(hf.code, 0);
  assert.ok(hf.stderr.includes('Q4_K'), hf.stderr);
});
