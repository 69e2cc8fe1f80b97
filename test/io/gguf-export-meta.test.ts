/**
 * GGUF export metadata as llama.cpp's convert_hf_to_gguf.py writes it: llama3 rope scaling as the rope_freqs.weight
 * tensor, the chat template(s), and vocabularies padded to the embedding with [PAD{id}] tokens. Each is written,
 * then read back with our reader and with @huggingface/gguf.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gguf as hfGguf } from '@huggingface/gguf';
import { FormatError } from '../../src/tensor/errors.js';
import { buildModel } from '../../src/io/build.js';
import { noGrad } from '../../src/tensor/index.js';
import { loadModel, type LoadedModel } from '../../src/io/model-load.js';
import { writeGgufModel } from '../../src/io/model-save.js';
import { readGguf } from '../../src/io/gguf.js';
import { GgmlType } from '../../src/io/ggml-quants.js';
import { ggufMetadataFromConfig } from '../../src/io/gguf-config.js';
import { tokenizerFromGguf } from '../../src/io/tokenizer-gguf.js';
import { loadChatTemplate } from '../../src/server/chat-template.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { tempDir } from './tmp.js';

const dir = tempDir('gguf-export-meta');
const HF = 'models/stories260K';
const GPT2_VOCAB = 'test/fixtures/gguf-vocab-gpt2/ggml-vocab-gpt-2.gguf';

async function oracle(path: string): Promise<{ metadata: Record<string, unknown>; tensorInfos: { name: string; shape: bigint[]; dtype: number }[] }> {
  const o = await hfGguf(path, { allowLocalFile: true });
  return { metadata: o.metadata as unknown as Record<string, unknown>, tensorInfos: o.tensorInfos };
}

test('llama3 rope scaling is written as llama.cpp\'s rope_freqs.weight (F32, one factor per rotated pair)', async () => {
  const scaling = { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPos: 8192 };
  const cfg = tinyConfig('llama', { dModel: 256, nHeads: 4, nKvHeads: 2, headDim: 64, ffnDim: 256, ropeTheta: 500000, ropeScaling: scaling });
  const src = randomModel(cfg, 1, 0.02);
  // the converter's formula in doubles: factor 1 for wavelengths under 8192 / 4, 8 over 8192 / 1, blended between
  const want = Array.from({ length: 32 }, (_, i) => {
    const wavelen = 2 * Math.PI * 500000 ** (i / 32);
    if (wavelen < 8192 / 4) return 1;
    if (wavelen > 8192 / 1) return 8;
    const smooth = (8192 / wavelen - 1) / (4 - 1);
    return 1 / ((1 - smooth) / 8 + smooth);
  });
  assert.ok(want.some((f) => f > 1 && f < 8), 'the blend region is exercised');
  for (const dtype of ['F32', 'Q4_K_M'] as const) {
    const path = join(dir, `llama3-${dtype}.gguf`);
    writeGgufModel(path, src, dtype);
    const f = readGguf(path);
    const info = f.tensorInfos.find((t) => t.name === 'rope_freqs.weight')!;
    assert.ok(info, 'rope_freqs.weight written');
    assert.equal(info.type, GgmlType.F32);
    assert.deepEqual(info.shape, [32]);
    const got = Array.from(f.tensors.get('rope_freqs.weight')!.data as Float32Array);
    for (let i = 0; i < 32; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-6 * want[i]!, `factor ${i}: ${got[i]} vs ${want[i]}`);
    assert.equal(f.metadata.get('llama.rope.freq_base')!.value, 500000);
    assert.equal(f.metadata.get('llama.rope.dimension_count')!.value, 64);
    assert.equal(f.metadata.has('llama.rope.scaling.type'), false, 'llama.cpp reads llama3 scaling from rope_freqs only');
    const o = await oracle(path);
    const t = o.tensorInfos.find((x) => x.name === 'rope_freqs.weight')!;
    assert.deepEqual(t.shape, [32n]);
    assert.equal(t.dtype, 0);
    assert.equal(o.metadata['llama.rope.freq_base'], 500000);
    // read back: the factors become the config's RoPE ('freqs'); the GGUF model computes what the HF one does
    const back = loadModel(path);
    assert.equal(back.config.ropeScaling?.type, 'freqs');
    if (dtype === 'F32') {
      const ids = Int32Array.from({ length: 40 }, (_, i) => (i * 13 + 5) % cfg.vocabSize);
      const logits = (m: Parameters<typeof buildModel>[0]) => noGrad(() => Float32Array.from(buildModel(m).forward(ids, 1, ids.length, { lastOnly: true }).data));
      const a = logits(src), b = logits(back);
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      assert.ok(worst < 1e-4, `GGUF vs HF logits differ by ${worst}`);
      const again = join(dir, 'llama3-again.gguf');
      writeGgufModel(again, back, 'F32');
      assert.deepEqual(Array.from(readGguf(again).tensors.get('rope_freqs.weight')!.data as Float32Array), got, 'GGUF -> GGUF keeps the factors');
    }
  }
  // the metadata alone cannot carry llama3 scaling: without the tensor it stays an error
  assert.throws(() => ggufMetadataFromConfig(cfg), (e: unknown) => e instanceof FormatError && e.message.includes('llama3'));
});

test('the chat template of tokenizer_config.json (string, or named list) goes to tokenizer.chat_template[.name], and GGUF -> GGUF keeps it', async () => {
  const TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";
  const TOOL = '{{ bos_token }}tools: {{ messages | length }}';
  const folder = join(dir, 'with-template');
  cpSync(HF, folder, { recursive: true });
  const cfgPath = join(folder, 'tokenizer_config.json');
  const base = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  writeFileSync(cfgPath, JSON.stringify({ ...base, chat_template: TEMPLATE }));
  const path = join(dir, 'template.gguf');
  writeGgufModel(path, loadModel(folder), 'Q8_0');
  assert.equal(readGguf(path, { tensors: false }).metadata.get('tokenizer.chat_template')!.value, TEMPLATE);
  assert.equal((await oracle(path)).metadata['tokenizer.chat_template'], TEMPLATE);
  // the server renders the same prompt from the GGUF as from the folder
  const msgs = [{ role: 'user', content: 'hi' }];
  assert.equal(loadChatTemplate(path).render(msgs), loadChatTemplate(folder).render(msgs));
  assert.equal(loadChatTemplate(path).render(msgs), '<|user|>hi</s><|assistant|>');

  // GGUF in, GGUF out: the template rides along
  const again = join(dir, 'template-again.gguf');
  writeGgufModel(again, loadModel(path), 'F32');
  assert.equal(readGguf(again, { tensors: false }).metadata.get('tokenizer.chat_template')!.value, TEMPLATE);

  // a list of named templates: "default" is the chat template, the others tokenizer.chat_template.{name}
  writeFileSync(cfgPath, JSON.stringify({ ...base, chat_template: [{ name: 'default', template: TEMPLATE }, { name: 'tool_use', template: TOOL }] }));
  const named = join(dir, 'named.gguf');
  writeGgufModel(named, loadModel(folder), 'F32');
  const m = readGguf(named, { tensors: false }).metadata;
  assert.equal(m.get('tokenizer.chat_template')!.value, TEMPLATE);
  assert.equal(m.get('tokenizer.chat_template.tool_use')!.value, TOOL);
  assert.deepEqual(m.get('tokenizer.chat_templates')!.value, ['tool_use']);
  const o = await oracle(named);
  assert.equal(o.metadata['tokenizer.chat_template.tool_use'], TOOL);
  assert.deepEqual(o.metadata['tokenizer.chat_templates'], ['tool_use']);

  // chat_template.jinja beside the tokenizer wins, as in transformers
  writeFileSync(join(folder, 'chat_template.jinja'), TOOL);
  const jinja = join(dir, 'jinja.gguf');
  writeGgufModel(jinja, loadModel(folder), 'F32');
  assert.equal(readGguf(jinja, { tensors: false }).metadata.get('tokenizer.chat_template')!.value, TOOL);

  // no template: no key (stories260K ships none)
  const none = join(dir, 'none.gguf');
  writeGgufModel(none, loadModel(HF), 'F32');
  assert.equal(readGguf(none, { tensors: false }).metadata.has('tokenizer.chat_template'), false);
});

test('a SentencePiece vocabulary smaller than the embedding is padded with [PAD{id}] tokens (UNUSED, score -10000)', async () => {
  const tok = loadModel(HF).tokenizer!;
  const cfg = tinyConfig('llama', { vocabSize: 600, bosId: 1, eosId: [2] });
  const src: LoadedModel = { ...randomModel(cfg, 2), tokenizer: tok, tokenizerSource: HF };
  const path = join(dir, 'padded-spm.gguf');
  writeGgufModel(path, src, 'F32');
  const m = readGguf(path, { tensors: false }).metadata;
  const tokens = m.get('tokenizer.ggml.tokens')!.value as string[];
  const types = m.get('tokenizer.ggml.token_type')!.value as Int32Array;
  const scores = m.get('tokenizer.ggml.scores')!.value as Float32Array;
  assert.equal(tokens.length, 600);
  assert.equal(types.length, 600);
  assert.equal(scores.length, 600);
  assert.equal(tokens[511], tok.idToPiece(511));
  assert.equal(tokens[512], '[PAD512]');
  assert.equal(tokens[599], '[PAD599]');
  for (let id = 512; id < 600; id++) {
    assert.equal(types[id], 5, `type of ${id}`); // UNUSED
    assert.equal(scores[id], -10000);
  }
  assert.equal(m.get('llama.vocab_size')!.value, 600);
  const o = await oracle(path);
  assert.equal((o.metadata['tokenizer.ggml.tokens'] as string[]).length, 600);
  assert.equal((o.metadata['tokenizer.ggml.tokens'] as string[])[599], '[PAD599]');
  const back = loadModel(path);
  assert.equal(back.config.vocabSize, 600);
  assert.deepEqual(back.tokenizer!.encode('Once upon a time, Lily'), tok.encode('Once upon a time, Lily'));
  const ids = tok.encode('Once upon a time', { bos: false });
  assert.equal(back.tokenizer!.decode([...ids, 512, 599]), tok.decode(ids), 'the [PAD] tokens decode to nothing');
});

test('a byte-level vocabulary smaller than the embedding (GPT-2: 50257 ids, 50304 rows) is padded the same way', async () => {
  const tok = tokenizerFromGguf(readGguf(GPT2_VOCAB, { tensors: false }));
  const cfg = tinyConfig('llama', { vocabSize: 50304, dModel: 16, nHeads: 2, nKvHeads: 1, headDim: 8, ffnDim: 32, bosId: 50256, eosId: [50256] });
  const src: LoadedModel = { ...randomModel(cfg, 3), tokenizer: tok, tokenizerSource: GPT2_VOCAB };
  const path = join(dir, 'padded-bpe.gguf');
  writeGgufModel(path, src, 'F32');
  const m = readGguf(path, { tensors: false }).metadata;
  const tokens = m.get('tokenizer.ggml.tokens')!.value as string[];
  const types = m.get('tokenizer.ggml.token_type')!.value as Int32Array;
  assert.equal(tokens.length, 50304);
  assert.equal(tokens[50256], '<|endoftext|>');
  assert.deepEqual(tokens.slice(50257, 50259), ['[PAD50257]', '[PAD50258]']);
  assert.equal(tokens[50303], '[PAD50303]');
  assert.ok(Array.from(types.subarray(50257)).every((t) => t === 5));
  assert.equal(m.has('tokenizer.ggml.scores'), false);
  const o = await oracle(path);
  assert.equal((o.metadata['tokenizer.ggml.tokens'] as string[]).length, 50304);
  const back = loadModel(path);
  assert.equal(back.config.vocabSize, 50304);
  assert.deepEqual(back.tokenizer!.encode('Hello world, 1234!'), tok.encode('Hello world, 1234!'));
  assert.equal(back.tokenizer!.decode([...tok.encode('Hello'), 50257, 50303]), 'Hello', 'the [PAD] tokens decode to nothing');
});
