/**
 * Fuzz target: llama2.c legacy checkpoints (stories260K.bin, and a variant with its own classifier: negative
 * vocab_size) with the tok512.bin tokenizer beside them, loaded with loadModel (also with --rope half's
 * relayout), or the tokenizer.bin alone with loadTokenizer. Mutations: the seven header fields and tokenizer.bin's
 * max_token_length, scores and lengths set to interesting values, flips, truncations, splices.
 */
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { llama2cFields, tokenizerBinFields } from './formats.js';
import { box, fuzz, linkInto, makeSeedSet, writeMutated } from './harness.js';
import { mutateBytes, type ByteSeed, type Rng } from './mutate.js';
import type { SeedSet } from './seeds.js';

test('fuzz llama2.c: mutated checkpoints and tokenizer.bin load, or fail with a typed error naming the file', async (t) => {
  const { llama2c } = await makeSeedSet<SeedSet>(box, 'llama2c');
  const seeds = llama2c!.map((l) => {
    const bin = readFileSync(join(l.dir, l.bin));
    const tok = readFileSync(join(l.dir, l.tok));
    return {
      l,
      bin: { name: l.name, bytes: bin, hot: [[0, 28], [bin.length - 64, bin.length]], fields: llama2cFields() } as ByteSeed,
      tok: { name: `${l.name}/${l.tok}`, bytes: tok, hot: [[0, 256]], fields: tokenizerBinFields(tok) } as ByteSeed,
    };
  });
  const donors = seeds.flatMap((s) => [s.bin, s.tok]);
  await fuzz(t, {
    name: 'llama2c',
    seconds: 4,
    make(rng: Rng, dir: string) {
      const s = rng.pick(seeds);
      const onTok = rng.chance(0.3);
      const m = mutateBytes(rng, onTok ? s.tok : s.bin, donors);
      writeMutated(join(dir, onTok ? s.l.tok : s.l.bin), m);
      linkInto(s.l.dir, dir, onTok ? s.l.bin : s.l.tok);
      const log = [`seed ${onTok ? s.tok.name : s.bin.name}`, ...m.log];
      if (onTok && rng.chance(0.5)) return { request: { kind: 'tokenizer', path: join(dir, s.l.tok) }, log };
      return { request: { kind: 'model', path: join(dir, s.l.bin), ropeHalf: rng.chance(0.3), touch: rng.u32(), checkWeights: rng.chance(0.1) }, log };
    },
  });
});
