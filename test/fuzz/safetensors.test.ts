/**
 * Fuzz target: safetensors weights in model folders (stories260K, demo-llama, demo-gpt2, stories260K in two shards
 * with an index, a converted model), loaded with loadModel as every command does, then a few tensors read and the
 * tokenizer used; sometimes `inspect --check-weights`' scan too. Mutations: bytes (header length, flips,
 * truncation, splices), the JSON header rewritten (entries deleted, dtypes/shapes/offsets changed; the length
 * prefix kept right, or left lying), the shard index edited. test/server/fuzz-parsers.test.ts covers
 * parseSafetensors on a synthetic buffer; this goes through the folder loader, the shard index, the config and
 * tensor-set checks and the lazy reads.
 */
import { test } from 'node:test';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { safetensorsHeaderLength, withSafetensorsHeader } from './formats.js';
import { box, fuzz, linkInto, makeSeedSet, writeMutated } from './harness.js';
import { mutateBytes, mutateJson, type ByteSeed, type Rng } from './mutate.js';
import type { FolderSeed, SeedSet } from './seeds.js';

/** Files up to this size are mutated whole; larger ones as header + a little data, the rest a sparse tail. */
const WHOLE = 2 << 20;

function weightsSeed(folder: FolderSeed, file: string): ByteSeed {
  const path = join(folder.dir, file);
  const size = statSync(path).size;
  const all = readFileSync(path);
  const hl = safetensorsHeaderLength(all);
  const keep = size <= WHOLE ? size : Math.min(size, 8 + hl + 4096);
  return {
    name: `${folder.name}/${file}`, bytes: Buffer.from(all.subarray(0, keep)), tail: size - keep,
    hot: [[0, 8 + hl]], fields: [{ at: 0, size: 8, what: 'header length' }],
  };
}

test('fuzz safetensors: mutated weights in model folders load, or fail with a typed error naming the file', async (t) => {
  const { folders } = await makeSeedSet<SeedSet>(box, 'folders');
  const seeds = folders!.map((f) => ({
    folder: f,
    weights: f.files.filter((x) => x.endsWith('.safetensors')).map((x) => weightsSeed(f, x)),
    index: f.files.includes('model.safetensors.index.json') ? readFileSync(join(f.dir, 'model.safetensors.index.json'), 'utf8') : null,
  }));
  const all = seeds.flatMap((s) => s.weights);
  await fuzz(t, {
    name: 'safetensors',
    seconds: 5,
    make(rng: Rng, dir: string) {
      const s = seeds[rng.weighted([3, 2, 2, 3, 2])]!;
      const log: string[] = [`seed folder ${s.folder.name}`];
      let changed: string;
      if (s.index !== null && rng.chance(0.25)) {
        changed = 'model.safetensors.index.json';
        const m = mutateJson(rng, s.index);
        writeFileSync(join(dir, changed), m.text);
        log.push(`${changed}: ${m.log}`);
      } else {
        const seed = rng.pick(s.weights);
        changed = seed.name.slice(s.folder.name.length + 1);
        const hl = safetensorsHeaderLength(seed.bytes);
        const how = rng.weighted([45, 40, 15]);
        let cur: ByteSeed = seed;
        if (how >= 1) {
          const j = mutateJson(rng, seed.bytes.toString('utf8', 8, 8 + hl), { stop: 0.3 });
          const lie = rng.chance(0.1);
          cur = { ...seed, bytes: withSafetensorsHeader(seed, j.text, lie) };
          log.push(`header JSON: ${j.log}${lie ? ' (length prefix not updated)' : ''}`);
        }
        if (how !== 1) {
          const m = mutateBytes(rng, cur, all);
          writeMutated(join(dir, changed), m);
          log.push(...m.log);
        } else {
          writeMutated(join(dir, changed), { bytes: cur.bytes, tail: cur.tail ?? 0 });
        }
      }
      for (const f of s.folder.files) if (f !== changed) linkInto(s.folder.dir, dir, f);
      return { request: { kind: 'model', path: dir, touch: rng.u32(), checkWeights: rng.chance(0.15) }, log };
    },
  });
});
