/**
 * Convert Karpathy's stories260K (llama2.c legacy v0 checkpoint + tok512 tokenizer) into the Hugging Face folder
 * committed at models/stories260K/, the project's bundled default model.
 *
 * Usage: node --import tsx scripts/make-stories260k.ts [--src DIR] [--tok DIR] [--out DIR]
 *   --src  folder with stories260K.bin (default test/fixtures/stories260K, a byte-identical copy of the shared data)
 *   --tok  folder with tokenizer.json + tokenizer_config.json for tok512 (default test/fixtures/tok512)
 *   --out  output folder (default models/stories260K)
 *
 * What it does, and why:
 * - llama2.c applies RoPE to interleaved pairs (2i, 2i+1); Hugging Face Llama rotates halves (i, i + hd/2). As in
 *   transformers' convert_llama_weights_to_hf.py, the rows of q_proj (per query head) and k_proj (per KV head) are
 *   permuted from interleaved to rotate-half order, so rotate-half RoPE on the result computes exactly the same
 *   attention scores. Everything else is copied bit for bit (F32).
 * - The output is deterministic: re-running it produces identical bytes (a test checks this against the commit).
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configToHf, makeConfig } from '../src/model/config.js';
import { readLlama2c } from '../src/io/llama2c.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { writeFileAtomic } from '../src/io/tensor-file.js';
import { checkHfTensors, interleavedToHalfRows } from '../src/io/weight-names.js';
import { FormatError } from '../src/tensor/errors.js';

/** sha256 of karpathy/tinyllamas stories260K/stories260K.bin (also the Git LFS hash on the Hugging Face hub). */
const STORIES260K_SHA256 = 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696';

const LICENSE = `MIT License

Copyright (c) 2023 Andrej Karpathy

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
`;

const SOURCE = `# stories260K as a Hugging Face folder

Converted by recurformer's \`scripts/make-stories260k.ts\` (\`node --import tsx scripts/make-stories260k.ts\`) from:

- \`stories260K.bin\` (sha256 ${STORIES260K_SHA256}): Andrej Karpathy's tiny Llama-2-architecture model trained with
  llama2.c on TinyStories, from Hugging Face \`karpathy/tinyllamas\` (subfolder stories260K), license MIT (see LICENSE).
  The copy used is in test/fixtures/stories260K/ (see its SOURCE.md for provenance).
- tok512 (the 512-piece SentencePiece BPE vocabulary trained by llama2.c's \`tinystories.py train_vocab\`): tokenizer.json
  and tokenizer_config.json are the Hugging Face tokenizers-format conversion in test/fixtures/tok512/.

Conversion: the llama2.c tensors are renamed to Hugging Face Llama names. The rows of every q_proj (8 query heads) and
k_proj (4 KV heads) are permuted from llama2.c's interleaved RoPE pairs to the rotate-half order of Hugging Face Llama,
exactly as transformers' convert_llama_weights_to_hf.py does; all other tensors are copied unchanged (float32). The
freq_cis tables of the checkpoint are dropped (RoPE theta 10000 recomputes them). The embedding matrix is shared with
the classifier (tie_word_embeddings true), as in the original.

Model: dim 64, hidden 172, 5 layers, 8 heads, 4 KV heads (head dim 8), vocab 512, context 512, RMSNorm eps 1e-5,
260,032 parameters. Reported validation loss on TinyStories: 1.2968.

Data the model was trained on: TinyStories (CDLA-Sharing-1.0).
`;

export interface MakeOptions {
  src: string;
  tok: string;
  out: string;
}

export function makeStories260k(o: MakeOptions): void {
  const binPath = join(o.src, 'stories260K.bin');
  const sha = createHash('sha256').update(readFileSync(binPath)).digest('hex');
  if (sha !== STORIES260K_SHA256) {
    throw new FormatError(binPath, `sha256 ${sha} is not the published stories260K.bin`, 'use the karpathy/tinyllamas file (beware of rearranged copies)');
  }
  const ckpt = readLlama2c(binPath);
  const cfg = makeConfig({ ...ckpt.config, ropeStyle: 'half' }, binPath);
  const tensors = new Map(ckpt.tensors);
  for (const [name, t] of ckpt.tensors) {
    if (name.endsWith('self_attn.q_proj.weight')) tensors.set(name, interleavedToHalfRows(t, cfg.nHeads));
    if (name.endsWith('self_attn.k_proj.weight')) tensors.set(name, interleavedToHalfRows(t, cfg.nKvHeads));
  }
  const checked = checkHfTensors(cfg, tensors, binPath);

  mkdirSync(o.out, { recursive: true });
  writeSafetensors(join(o.out, 'model.safetensors'), [...checked.values()], { format: 'pt' });
  const json = (name: string, value: unknown) => writeFileAtomic(join(o.out, name), Buffer.from(JSON.stringify(value, null, 2) + '\n'));
  json('config.json', configToHf(cfg));
  json('generation_config.json', { bos_token_id: cfg.bosId, eos_token_id: cfg.eosId[0], max_length: cfg.maxPos });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(o.tok, f), join(o.out, f));
  writeFileAtomic(join(o.out, 'LICENSE'), Buffer.from(LICENSE));
  writeFileAtomic(join(o.out, 'SOURCE.md'), Buffer.from(SOURCE));
}

function parseArgs(argv: string[]): MakeOptions {
  const o: MakeOptions = { src: 'test/fixtures/stories260K', tok: 'test/fixtures/tok512', out: 'models/stories260K' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    const value = argv[i + 1];
    if ((key !== 'src' && key !== 'tok' && key !== 'out') || value === undefined) {
      throw new Error(`make-stories260k: unknown or incomplete option ${argv[i]}; usage: [--src DIR] [--tok DIR] [--out DIR]`);
    }
    o[key] = value;
  }
  return o;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const o = parseArgs(process.argv.slice(2));
  makeStories260k(o);
  console.log(`wrote ${o.out}`);
}
