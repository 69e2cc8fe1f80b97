/**
 * Fuzz target: config.json of model folders (stories260K and demo-llama: Llama; demo-gpt2: GPT-2; a converted
 * model: its `recurformer` section; the sharded copy), loaded with loadModel, which checks the config against the
 * weights; a few tensors are then read and the tokenizer used. Mutations: keys deleted or renamed, values retyped
 * or nudged (layer counts of 1e9, vocab sizes of 0, head dims that do not divide, rope_scaling objects, Infinity),
 * subtrees swapped; raw bytes.
 */
import { test } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { box, fuzz, linkInto, makeSeedSet, writeMutated } from './harness.js';
import { mutateBytes, mutateJson, type Rng } from './mutate.js';
import type { SeedSet } from './seeds.js';

// Found by this target and fixed (input seed 8ee2bdb8 of base 0x5eed2024: a converted model's num_attention_heads
// 8 -> 1e9 made loadModel build the recurrent shapes for a billion heads): now a FormatError from checkHeadCounts.

test('fuzz config.json: mutated configs load, or fail with a typed error naming the file', async (t) => {
  const { folders } = await makeSeedSet<SeedSet>(box, 'folders');
  const seeds = folders!.map((f) => ({ folder: f, config: readFileSync(join(f.dir, 'config.json'), 'utf8') }));
  const donors = seeds.map((s) => s.config);
  await fuzz(t, {
    name: 'config-json',
    seconds: 5,
    make(rng: Rng, dir: string) {
      const s = seeds[rng.weighted([3, 2, 2, 1, 3])]!;
      const log = [`seed folder ${s.folder.name}`];
      if (rng.chance(0.1)) {
        const bytes = Buffer.from(s.config, 'utf8');
        const m = mutateBytes(rng, { name: 'config.json', bytes }, []);
        writeMutated(join(dir, 'config.json'), m);
        log.push(...m.log);
      } else {
        const m = mutateJson(rng, s.config, { donors, stop: 0.4 });
        writeFileSync(join(dir, 'config.json'), m.text);
        log.push(m.log);
      }
      for (const f of s.folder.files) if (f !== 'config.json') linkInto(s.folder.dir, dir, f);
      return { request: { kind: 'model', path: dir, touch: rng.u32(), checkWeights: rng.chance(0.1) }, log };
    },
  });
});
