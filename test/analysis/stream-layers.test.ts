/**
 * The analysis sees the attention the model computes: per-layer windows (Gemma 3 interleaves local and global
 * layers) and the model's attention scale (query_pre_attn_scalar), checked against softmax(q.k * scale) by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { streamAttention } from '../../src/analysis/stream.js';
import { buildModel } from '../../src/io/build.js';
import { attnScaleOf, configFromHf, layerWindow } from '../../src/model/config.js';
import { randomModel } from '../helpers/random-model.js';

test('streamAttention: local layers see their window only, global layers every key, with the model\'s own scale', () => {
  const cfg = configFromHf({
    model_type: 'gemma3_text', vocab_size: 97, hidden_size: 48, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, query_pre_attn_scalar: 24, max_position_embeddings: 64,
    rms_norm_eps: 1e-6, sliding_window: 4, layer_types: ['sliding_attention', 'full_attention'], rope_theta: 1e6,
    rope_local_base_freq: 10000, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'float32',
  }, 'gemma-test');
  assert.equal(layerWindow(cfg, 0), 4);
  assert.equal(layerWindow(cfg, 1), 0);
  assert.ok(Math.abs(attnScaleOf(cfg) - 1 / Math.sqrt(24)) < 1e-12 && attnScaleOf(cfg) !== 1 / Math.sqrt(16));
  const model = buildModel(randomModel(cfg, 4, 0.3));
  const T = 12;
  const ids = Int32Array.from({ length: T }, (_, i) => (i * 11 + 3) % 97);
  const far = new Map<number, number>(); // layer -> attention mass of the last query on keys outside a 4-window
  const rowOf = new Map<number, Float32Array>(); // layer -> head 0's probabilities for the last query
  let checked = 0;
  const last = T - 1;
  streamAttention(model, ids, 1, T, {}, (blk) => {
    if (last < blk.qStart || last >= blk.qStart + blk.qLen) return;
    const row = blk.probs.slice((last - blk.qStart) * blk.S, (last - blk.qStart + 1) * blk.S); // b 0, head 0
    let mass = 0;
    for (let j = 0; j <= last - 4; j++) mass += row[j]!;
    far.set(blk.layer, mass);
    rowOf.set(blk.layer, row);
  }, (layer, taps) => {
    // head 0, last query: softmax over the allowed keys of q.k * scale, from the recorded (roped) q and k
    const q = taps.get(`blk.${layer}.q`)!.data, k = taps.get(`blk.${layer}.k`)!.data;
    const Dh = cfg.headDim, Hq = cfg.nHeads, Hkv = cfg.nKvHeads;
    const lo = layerWindow(cfg, layer) > 0 ? last - layerWindow(cfg, layer) + 1 : 0;
    const logits: number[] = [];
    for (let j = lo; j <= last; j++) {
      let dot = 0;
      for (let d = 0; d < Dh; d++) dot += q[(last * Hq) * Dh + d]! * k[(j * Hkv) * Dh + d]!;
      logits.push(dot * attnScaleOf(cfg));
    }
    const m = Math.max(...logits);
    const z = logits.reduce((a, x) => a + Math.exp(x - m), 0);
    const got = rowOf.get(layer)!;
    logits.forEach((x, i) => assert.ok(Math.abs(Math.exp(x - m) / z - got[lo + i]!) < 1e-5, `layer ${layer} key ${lo + i}`));
    checked++;
  });
  assert.equal(checked, 2);
  assert.equal(far.get(0), 0, 'the local layer puts no mass beyond its window');
  assert.ok(far.get(1)! > 1e-3, `the global layer attends beyond 4 keys back (mass ${far.get(1)})`);
});
