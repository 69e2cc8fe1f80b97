/**
 * Fuzz target: plan.json, through `recurformer convert --plan`'s path: read (readJsonArg), parsed (parsePlan),
 * checked against the model (checkPlanFile), and when accepted, converted and written (writeConverted, which loads
 * the output back before it renames it into place). The plans are one written by convert, a threshold plan with
 * retrieval-protected groups, and one adding groups to an already converted model (with `earlier`). Besides "only
 * typed errors naming the file", an accepted plan must give a model that loads back with the recurformer section
 * and tensors convert made, whose plan.json parses and fits it; a write that fails must leave nothing behind.
 */
import { test } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { box, fuzz, makeSeedSet, writeMutated } from './harness.js';
import { mutateBytes, mutateJson, type Rng } from './mutate.js';
import type { SeedSet } from './seeds.js';

test('fuzz plan.json: mutated plans convert to a model that loads back, or fail with a typed error naming the file', async (t) => {
  const { plans, converted } = await makeSeedSet<SeedSet>(box, 'plans');
  const seeds = plans!.map((p) => ({ plan: p, text: readFileSync(p.path, 'utf8') }));
  const donors = seeds.map((s) => s.text);
  await fuzz(t, {
    name: 'plan',
    seconds: 6,
    make(rng: Rng, dir: string) {
      const s = rng.pick(seeds);
      const path = join(dir, 'plan.json');
      const log = [`seed ${s.plan.name}`];
      if (rng.chance(0.12)) {
        const m = mutateBytes(rng, { name: 'plan.json', bytes: Buffer.from(s.text, 'utf8') }, []);
        writeMutated(path, m);
        log.push(...m.log);
      } else {
        const m = mutateJson(rng, s.text, { donors, stop: 0.4 });
        writeFileSync(path, m.text);
        log.push(m.log);
      }
      return { request: { kind: 'plan', path, base: s.plan.base, converted: converted!, out: join(dir, 'out') }, log };
    },
  });
});
