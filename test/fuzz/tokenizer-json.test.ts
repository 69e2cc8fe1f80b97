/**
 * Fuzz target: tokenizer.json and tokenizer_config.json files (stories260K's SentencePiece-style BPE, demo-llama's
 * byte-level BPE with a Split regex, and variants in the Llama 3 (NFC, ignore_merges), SmolLM2 (Digits +
 * ByteLevel), Whitespace/Punctuation/String-Split and Metaspace layouts), loaded from their folder or file with
 * loadTokenizer, or with the model through loadModel, then used on texts with whitespace runs, digits, non-Latin
 * script, emoji and special-token lookalikes. Mutations: JSON nodes deleted, retyped, nudged, renamed, swapped or
 * replaced by another subtree (of this file or another seed); Split regexes edited (quantifiers, groups,
 * catastrophic shapes); raw bytes. test/server/fuzz-parsers.test.ts fuzzes tokenizerFromJson on one object, at
 * the top two levels; this goes deeper, through the files, and into the pre-tokenizers.
 */
import { test } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { box, fuzz, linkInto, makeSeedSet, writeMutated } from './harness.js';
import { mutateBytes, mutateJson, type Rng } from './mutate.js';
import type { SeedSet } from './seeds.js';

test('fuzz tokenizer.json: mutated tokenizer files load and encode, or fail with a typed error naming the file', async (t) => {
  const { folders } = await makeSeedSet<SeedSet>(box, 'tokenizers');
  const seeds = folders!.map((f) => ({
    folder: f,
    json: readFileSync(join(f.dir, 'tokenizer.json'), 'utf8'),
    config: readFileSync(join(f.dir, 'tokenizer_config.json'), 'utf8'),
    hasModel: f.files.includes('model.safetensors'),
  }));
  const donors = seeds.map((s) => s.json);
  await fuzz(t, {
    name: 'tokenizer-json',
    seconds: 8,
    make(rng: Rng, dir: string) {
      const s = rng.pick(seeds);
      const log = [`seed folder ${s.folder.name}`];
      let changed: string;
      if (rng.chance(0.15)) {
        changed = 'tokenizer_config.json';
        const m = mutateJson(rng, s.config, { stop: 0.5 });
        writeFileSync(join(dir, changed), m.text);
        log.push(`${changed}: ${m.log}`);
      } else if (rng.chance(0.12)) {
        changed = 'tokenizer.json';
        const bytes = Buffer.from(s.json, 'utf8');
        const m = mutateBytes(rng, { name: 'tokenizer.json', bytes, hot: [[0, 600], [bytes.length - 3000, bytes.length]] }, []);
        writeMutated(join(dir, changed), m);
        log.push(`${changed}: ${m.log.join('; ')}`);
      } else {
        changed = 'tokenizer.json';
        const m = mutateJson(rng, s.json, { donors, regexKeys: ['Regex', 'String'], stop: 0.3 });
        writeFileSync(join(dir, changed), m.text);
        log.push(`${changed}: ${m.log}`);
      }
      for (const f of s.folder.files) if (f !== changed) linkInto(s.folder.dir, dir, f);
      const how = s.hasModel && rng.chance(0.3) ? 'model' : rng.chance(0.5) ? 'folder' : 'file';
      return {
        request: how === 'model' ? { kind: 'model', path: dir, touch: rng.u32() } : { kind: 'tokenizer', path: how === 'folder' ? dir : join(dir, 'tokenizer.json') },
        log,
      };
    },
  });
});
