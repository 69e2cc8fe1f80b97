/**
 * Fuzz target: GGUF files (stories260K written by writeGgufModel in F32 and F16, the same with its matrices
 * re-stored as Q8_0/Q4_0/Q4_1 blocks, and llama.cpp's GPT-2 vocabulary file), loaded with loadModel (config from
 * metadata, tensor renaming, the vocabulary as tokenizer, a few tensors read and dequantized) or loadTokenizer.
 * Mutations favour the header: every count, string length, value type, array length, dim, tensor type and offset
 * of the seed is a field the mutator knows (formats.ts walks the seed), besides flips, truncations and splices.
 * test/server/fuzz-parsers.test.ts covers parseGguf on a small synthetic buffer; this reaches the config, the
 * weight table, the quantized reads and the GGUF tokenizers.
 */
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ggufLayout } from './formats.js';
import { box, fuzz, makeSeedSet, writeMutated } from './harness.js';
import { mutateBytes, type ByteSeed, type Rng } from './mutate.js';
import type { SeedSet } from './seeds.js';

test('fuzz GGUF: mutated model and vocabulary files load, or fail with a typed error naming the file', async (t) => {
  const { files } = await makeSeedSet<SeedSet>(box, 'gguf');
  const seeds = files!.map((f) => {
    const bytes = readFileSync(f.path);
    const { fields, headerEnd, infoStart } = ggufLayout(bytes);
    // the counts and first keys, the tensor infos, and the whole header (mostly the vocabulary)
    const seed: ByteSeed = { name: f.name, bytes, hot: [[0, 256], [infoStart, headerEnd], [0, headerEnd]], fields };
    return { file: f, seed };
  });
  await fuzz(t, {
    name: 'gguf',
    seconds: 5,
    make(rng: Rng, dir: string) {
      const s = seeds[rng.weighted([3, 2, 3, 1])]!;
      const m = mutateBytes(rng, s.seed, seeds.map((x) => x.seed));
      const path = join(dir, 'model.gguf');
      writeMutated(path, m);
      const asModel = s.file.kind === 'model' ? rng.chance(0.8) : rng.chance(0.2);
      return {
        request: asModel ? { kind: 'model', path, touch: rng.u32(), checkWeights: rng.chance(0.15) } : { kind: 'tokenizer', path },
        log: [`seed ${s.file.name}`, ...m.log],
      };
    },
  });
});
