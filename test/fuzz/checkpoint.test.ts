/**
 * Fuzz target: checkpoint.bin, the training checkpoint loadCheckpoint reads on `train --resume`, from a two-step
 * `train` run. Most mutations keep the checksums right so that they reach the checks behind them: the JSON header
 * edited (state, config, tensor entries) and re-sealed with its length and CRC32, blob bytes or entries changed and
 * their CRCs recomputed, header bytes damaged and the header CRC recomputed (JSON that no longer parses). Raw byte
 * mutations (flips, the length and CRC fields, truncation) cover the outer checks. test/train/checkpoint.test.ts
 * has one test per kind of damage; this explores combinations.
 */
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCheckpoint, checkpointParts, CKPT_PRE, crc32, fixBlobCrcs } from './formats.js';
import { box, fuzz, makeSeedSet, writeMutated } from './harness.js';
import { mutateBytes, mutateJson, type ByteSeed, type Rng } from './mutate.js';
import type { SeedSet } from './seeds.js';

test('fuzz checkpoint.bin: mutated checkpoints load, or fail with a typed error naming the file', async (t) => {
  const { checkpoint } = await makeSeedSet<SeedSet>(box, 'checkpoint');
  const bytes = readFileSync(checkpoint!);
  const magic = bytes.subarray(0, 8);
  const { header, blobs } = checkpointParts(bytes);
  const hl = bytes.readUInt32LE(8);
  const seed: ByteSeed = {
    name: 'checkpoint.bin', bytes, hot: [[0, CKPT_PRE + hl]],
    fields: [{ at: 8, size: 4, what: 'header length' }, { at: 12, size: 4, what: 'header CRC32' }],
  };
  await fuzz(t, {
    name: 'checkpoint',
    seconds: 3,
    make(rng: Rng, dir: string) {
      const path = join(dir, 'checkpoint.bin');
      const how = rng.weighted([25, 40, 15, 10, 10]);
      let out: Buffer;
      const log: string[] = [];
      if (how === 0) {
        const m = mutateBytes(rng, seed, []);
        writeMutated(path, m);
        return { request: { kind: 'checkpoint', dir }, log: m.log };
      } else if (how === 1) {
        const j = mutateJson(rng, header.trimEnd(), { stop: 0.3 });
        const fix = rng.chance(0.6);
        out = buildCheckpoint(magic, fix ? fixBlobCrcs(j.text, blobs) : j.text, blobs);
        log.push(`header: ${j.log}${fix ? ' (blob CRCs recomputed)' : ''}`);
      } else if (how === 2) {
        const m = mutateBytes(rng, { name: 'blobs', bytes: blobs }, []);
        out = buildCheckpoint(magic, fixBlobCrcs(header.trimEnd(), m.bytes), m.bytes);
        log.push(`blobs: ${m.log.join('; ')} (blob CRCs recomputed)`);
      } else if (how === 3) {
        // header bytes damaged, then sealed: the damage reaches JSON.parse and the schema
        const m = mutateBytes(rng, { name: 'header', bytes: Buffer.from(header, 'utf8') }, []);
        out = buildCheckpoint(magic, m.bytes.toString('utf8'), blobs);
        log.push(`header bytes: ${m.log.join('; ')} (header CRC recomputed)`);
      } else {
        // an edited header with the old length and CRC fields left as they were
        const j = mutateJson(rng, header.trimEnd(), { stop: 0.3 });
        out = buildCheckpoint(magic, j.text, blobs);
        out.writeUInt32LE(rng.chance(0.5) ? hl : out.readUInt32LE(8), 8);
        out.writeUInt32LE(crc32(Buffer.from(header, 'utf8')), 12);
        log.push(`header: ${j.log} (stale length/CRC)`);
      }
      writeMutated(path, { bytes: out, tail: 0 });
      return { request: { kind: 'checkpoint', dir }, log };
    },
  });
});
