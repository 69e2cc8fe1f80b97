/** End-to-end engine check: a tiny Llama-style model overfits a fixed batch, identically on both backends. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { Rng, setBackend } from '../../src/tensor/index.js';
import { availableBackends } from '../helpers/backends.js';
import { tinyLlama } from '../helpers/tiny-llama.js';
import { TOL, assertClose } from '../helpers/tolerances.js';

const cfg = { vocab: 48, dModel: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, ffn: 64, seq: 16 };
const B = 4;

function run(backendName: 'reference' | 'native', steps: number): number[] {
  setBackend(backendName);
  try {
    const model = tinyLlama(cfg, 3);
    const rng = new Rng(11);
    const ids = Int32Array.from({ length: B * (cfg.seq + 1) }, () => rng.int(cfg.vocab));
    const inputs = new Int32Array(B * cfg.seq), targets = new Int32Array(B * cfg.seq);
    for (let b = 0; b < B; b++) {
      inputs.set(ids.subarray(b * (cfg.seq + 1), b * (cfg.seq + 1) + cfg.seq), b * cfg.seq);
      targets.set(ids.subarray(b * (cfg.seq + 1) + 1, (b + 1) * (cfg.seq + 1)), b * cfg.seq);
    }
    const opt = new T.AdamW(model.params, { lr: 1e-2, weightDecay: 0.01 });
    const sched = T.cosineSchedule({ lr: 1e-2, warmupSteps: 5, totalSteps: steps });
    const losses: number[] = [];
    for (let s = 0; s < steps; s++) {
      const logits = model.forward(inputs, B, cfg.seq);
      const loss = T.crossEntropy(logits, targets);
      losses.push(loss.item());
      T.backward(loss);
      T.clipGradNorm(model.params, 1.0);
      opt.step(sched(s));
      opt.zeroGrad();
    }
    return losses;
  } finally {
    setBackend('reference');
  }
}

const STEPS = 40;
const results = new Map<string, number[]>();

for (const b of availableBackends()) {
  test(`tiny Llama overfits a fixed batch [${b}]`, () => {
    const losses = run(b, STEPS);
    results.set(b, losses);
    const first = losses[0]!, last = losses[losses.length - 1]!;
    assert.ok(Math.abs(first - Math.log(cfg.vocab)) < 0.1, `initial loss ${first} should be near ln(V) = ${Math.log(cfg.vocab)}`);
    assert.ok(last < 0.25 * first, `loss went from ${first} to ${last}; expected below a quarter`);
  });
}

test('both backends follow the same loss curve', (t) => {
  const ref = results.get('reference'), nat = results.get('native');
  if (!ref || !nat) {
    t.skip('native backend not built');
    return;
  }
  assertClose(nat, ref, TOL.training, 'loss curve native vs reference');
});
