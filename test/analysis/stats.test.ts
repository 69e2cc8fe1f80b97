/** Per-head statistics on constructed heads with known answers, and block streaming against the full probabilities. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecencyAcc, groupScore, uniformHeadRR, windowMass } from '../../src/analysis/recency.js';
import { KeyMassAcc, SinkAcc } from '../../src/analysis/sinks.js';
import { streamAttention } from '../../src/analysis/stream.js';
import { overall, shiftVote, THRESHOLDS } from '../../src/analysis/waiver-tests.js';
import { buildModel } from '../../src/io/build.js';
import { TapRecorder } from '../../src/model/taps.js';
import { noGrad, scope } from '../../src/tensor/index.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { TOL, assertClose } from '../helpers/tolerances.js';

/** Rows of a constructed causal head: rowOf(i) gives A[i, 0..i]. */
function run(T: number, windows: number[], rowOf: (i: number) => number[]) {
  const rec = new RecencyAcc(windows), sink = new SinkAcc();
  for (let i = 0; i < T; i++) {
    const row = rowOf(i);
    assertClose(row.reduce((a, b) => a + b, 0), 1, TOL.reduction, `row ${i} sums to 1`);
    rec.add(row, i);
    sink.add(row, i);
  }
  return { ...rec.summary(), ...sink.summary() };
}

const oneHot = (n: number, j: number): number[] => Array.from({ length: n }, (_, t) => (t === j ? 1 : 0));

test('previous-token head: RR(1) = 1, distance 1, entropy 0', () => {
  const T = 40;
  const s = run(T, [1, 4], (i) => oneHot(i + 1, Math.max(0, i - 1)));
  assert.equal(s.rr['1'], 1);
  assert.equal(s.rr['4'], 1);
  assert.equal(s.rrw['1'], 1);
  assert.equal(s.meanDistance, 1);
  assert.equal(s.entropy, 0);
  // Only query 1's previous token is position 0.
  assertClose(s.sink!, 1 / (T - 1), TOL.elementwise, 'sink');
});

test('uniform causal head: RR(k) equals its closed form (k+1)(H_T - H_{k+1})/(T-k-1)', () => {
  const T = 50;
  const s = run(T, [2, 4, 16], (i) => new Array<number>(i + 1).fill(1 / (i + 1)));
  for (const k of [2, 4, 16]) assertClose(s.rr[String(k)]!, uniformHeadRR(k, T), TOL.reduction, `RR(${k})`);
  // The closed form itself, by hand for T = 8, k = 2: mean of 3/4, 3/5, 3/6, 3/7, 3/8.
  assertClose(uniformHeadRR(2, 8), (3 / 4 + 3 / 5 + 3 / 6 + 3 / 7 + 3 / 8) / 5, TOL.double, 'closed form');
  let ent = 0, sink = 0;
  for (let i = 1; i < T; i++) {
    ent += Math.log(i + 1);
    sink += 1 / (i + 1);
  }
  assertClose(s.entropy!, ent / (T - 1), TOL.reduction, 'entropy = mean log(i+1)');
  assertClose(s.sink!, sink / (T - 1), TOL.reduction, 'sink = mean 1/(i+1)');
  assertClose(s.meanDistance!, (T / 2) / 2, TOL.reduction, 'distance i/2 averaged over i = 1..T-1');
});

test('pure sink head: sink mass 1, RR 0, RRw undefined (null) with every row counted as excluded', () => {
  const T = 30;
  const s = run(T, [4, 16], (i) => oneHot(i + 1, 0));
  assert.equal(s.sink, 1);
  assert.equal(s.sinkFirst4, 1);
  assert.equal(s.rr['4'], 0);
  assert.equal(s.rrw['4'], null);
  assert.equal(s.rrwExcluded['4'], T - 5);
  assert.equal(s.rrwExcluded['16'], T - 17);
});

test('sink + local head: RR = 1/2 but RRw = 1 (the waiver-adjusted recency sees through the sink)', () => {
  const s = run(20, [4], (i) => (i === 0 ? [1] : [0.5, ...new Array<number>(i - 1).fill(0), 0.5]));
  assertClose(s.rr['4']!, 0.5, TOL.elementwise, 'RR');
  assertClose(s.rrw['4']!, 1, TOL.elementwise, 'RRw');
  assert.equal(s.sink, 0.5);
});

test('RR excludes queries whose window reaches the whole prefix; windowMass and KeyMassAcc', () => {
  const rec = new RecencyAcc([4]);
  for (let i = 0; i <= 4; i++) rec.add(oneHot(i + 1, 0), i);
  assert.equal(rec.summary().rr['4'], null);
  assert.equal(windowMass([0.1, 0.2, 0.3, 0.4], 3, 1), 0.7);
  const km = new KeyMassAcc(2);
  km.add([0.5, 0.5], 1); // query 1 cannot see key 2: ignored
  km.add([0, 0, 0.25, 0.75], 3);
  km.add([0, 0, 0.75, 0, 0.25], 4);
  assert.equal(km.value(), 0.5);
});

test('GQA group score is the minimum over its query heads (null if any head is undefined)', () => {
  assert.equal(groupScore([0.9, 0.4, 0.7]), 0.4);
  assert.equal(groupScore([0.9, null]), null);
  assert.equal(groupScore([]), null);
});

test('waiver votes: the shift test keeps only an unchanged sink; a lost one is positional, a grown one undecided', () => {
  assert.equal(shiftVote(1), 'feature'); // RoPE: exactly unchanged
  assert.equal(shiftVote(THRESHOLDS.KEEP), 'feature');
  assert.equal(shiftVote(1 / THRESHOLDS.KEEP), 'feature');
  assert.equal(shiftVote(0.3), 'positional');
  assert.equal(shiftVote(0.7), 'inconclusive');
  assert.equal(shiftVote(3.9), 'inconclusive'); // learned positions out of distribution: moved, not lost
  assert.equal(overall(['no-sink', 'feature-distribution', 'inconclusive']), 'feature-distribution');
  assert.equal(overall(['feature-distribution', 'positional-encoding']), 'mixed');
  assert.equal(overall(['no-sink', 'no-sink']), 'no-sink');
  assert.equal(overall(['no-sink', 'inconclusive']), 'inconclusive');
});

test('streamed probability blocks equal the full attn_probs tap for any block size (GPT-2 and Llama)', () => {
  for (const arch of ['gpt2', 'llama'] as const) {
    const model = buildModel(randomModel(tinyConfig(arch), 3));
    const Tn = 23;
    const ids = Int32Array.from({ length: Tn }, (_, i) => (i * 5 + 1) % 60);
    const rec = new TapRecorder((n) => n.endsWith('.attn_probs'));
    const full = noGrad(() => scope(() => {
      model.forward(ids, 1, Tn, { taps: rec });
      return [...rec.values.values()].map((t) => Float32Array.from(t.data));
    }));
    for (const block of [1, 7, 64]) {
      const got = full.map((f) => new Float32Array(f.length));
      streamAttention(model, ids, 1, Tn, { block }, (b) => {
        for (let r = 0; r < b.Hq; r++) {
          for (let q = 0; q < b.qLen; q++) {
            const src = (r * b.qLen + q) * b.S, dst = (r * Tn + b.qStart + q) * Tn;
            got[b.layer]!.set(b.probs.subarray(src, src + Tn), dst);
          }
        }
      });
      got.forEach((g, l) => assertClose(g, full[l]!, TOL.parity, `${arch} block ${block} layer ${l}`));
    }
  }
});
