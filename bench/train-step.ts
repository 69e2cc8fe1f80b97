/**
 * The engine's reference training workload (issue 2): a Llama-style model of about 3.5M parameters (4 layers,
 * d_model 256, 4 heads, GQA 2 KV heads, SwiGLU 688, vocab 2048 tied), sequence 256, batch 8: one step is
 * forward + backward + AdamW, about 50 GFLOP. Used by bench/engine.ts; runnable alone.
 */
import * as T from '../src/tensor/index.js';
import { Rng, backend } from '../src/tensor/index.js';
import { paramCount, tinyLlama, trainFlops } from '../test/helpers/tiny-llama.js';

export interface TrainStepResult {
  seconds: number;
  gflop: number;
  gflops: number;
  params: number;
  backend: string;
}

export async function benchTrainStep(opts: { steps?: number } = {}): Promise<TrainStepResult> {
  const cfg = { vocab: 2048, dModel: 256, nLayers: 4, nHeads: 4, nKvHeads: 2, ffn: 688, seq: 256 };
  const B = 8;
  const model = tinyLlama(cfg, 1);
  const rng = new Rng(5);
  const inputs = Int32Array.from({ length: B * cfg.seq }, () => rng.int(cfg.vocab));
  const targets = Int32Array.from({ length: B * cfg.seq }, () => rng.int(cfg.vocab));
  const opt = new T.AdamW(model.params, { lr: 1e-3 });
  const step = (): void => {
    const loss = T.crossEntropy(model.forward(inputs, B, cfg.seq), targets);
    T.backward(loss);
    T.clipGradNorm(model.params, 1);
    opt.step();
    opt.zeroGrad();
  };
  step(); // warm-up: first-touch allocations, thread pool start
  const n = opts.steps ?? 3;
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    step();
    times.push((performance.now() - t0) / 1000);
  }
  const seconds = Math.min(...times);
  const gflop = trainFlops(model, B * cfg.seq) / 1e9;
  return { seconds, gflop, gflops: gflop / seconds, params: paramCount(model), backend: backend().name };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchTrainStep();
  console.log(`train step (${r.backend}): ${r.params} params, ${r.gflop.toFixed(1)} GFLOP, ${r.seconds.toFixed(3)} s, ` +
    `${r.gflops.toFixed(1)} GFLOPS`);
}
