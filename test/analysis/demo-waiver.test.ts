/**
 * The waiver contrast of the two bundled demo models (docs/results.md), pinned on their committed weights with the
 * settings of the results table (8 samples of 256 tokens of held-out Frankenstein, seed 0): both have a sink the
 * tests say is picked by features, and only under RoPE is it blind to the position ids.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { analyze } from '../../src/analysis/analyze.js';
import type { Analysis } from '../../src/analysis/schema.js';
import { plainText } from '../../src/eval/synthetic.js';
import { loadModel } from '../../src/io/model-load.js';
import { buildModel } from '../../src/io/build.js';

const text = plainText(readFileSync(new URL('../../data/gutenberg/frankenstein_pg84.txt', import.meta.url), 'utf8')).slice(0, 60_000);

function analyzeDemo(name: string): Analysis {
  const loaded = loadModel(new URL(`../../models/${name}`, import.meta.url).pathname);
  const ids = loaded.tokenizer!.encode(text, { bos: false });
  return analyze(buildModel(loaded, { dtype: 'f32' }), ids, { samples: 8, seq: 256, windows: [4, 16, 64], seed: 0 });
}

/** Per layer: sink mass / uniform, shift retention, prepend follow and stay, verdict. */
function layers(a: Analysis): { sink: number; shift: number; follow: number; stay: number; verdict: string }[] {
  const t = (name: string): Analysis['waiver']['tests']['tests'][number] => a.waiver.tests.tests.find((x) => x.test === name)!;
  return a.waiver.perLayer.map((p, l) => ({
    sink: a.waiver.tests.baseline[l]!.sinkMass / a.waiver.tests.uniformMass,
    shift: t('shift').perLayer[l]!.values.retention!,
    follow: t('prepend').perLayer[l]!.values.follow!,
    stay: t('prepend').perLayer[l]!.values.stay!,
    verdict: p.verdict,
  }));
}

test('demo-llama (RoPE): a sink in the last layer, following the BOS token; shifting positions changes nothing', () => {
  const a = analyzeDemo('demo-llama');
  const ls = layers(a);
  assert.equal(a.waiver.mechanism, 'feature-distribution');
  assert.ok(ls[5]!.sink >= 3, `layer 5 sink ${ls[5]!.sink}x uniform`);
  assert.equal(ls[5]!.verdict, 'feature-distribution');
  assert.ok(ls[5]!.follow > 2 * ls[5]!.stay, `follow ${ls[5]!.follow}, stay ${ls[5]!.stay}`);
  for (const l of ls) assert.ok(Math.abs(l.shift - 1) < 1e-3, `shift retention ${l.shift}`);
});

test('demo-gpt2 (learned positions): a sink in layer 1 that follows BOS, but whose strength moves with the position ids', () => {
  const a = analyzeDemo('demo-gpt2');
  const ls = layers(a);
  assert.equal(a.model.positions, 'learned');
  assert.ok(ls[1]!.sink >= 5, `layer 1 sink ${ls[1]!.sink}x uniform`);
  assert.ok(ls.every((l, i) => i === 1 || l.sink < 3), 'no other layer has a sink');
  assert.equal(ls[1]!.verdict, 'feature-distribution');
  assert.ok(ls[1]!.follow > 2 * ls[1]!.stay, `follow ${ls[1]!.follow}, stay ${ls[1]!.stay}`);
  assert.ok(ls[1]!.shift > 2, `shifting learned positions moves the sink's mass: retention ${ls[1]!.shift}`);
});
