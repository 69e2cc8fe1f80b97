/**
 * A small Llama-style decoder written directly on the tensor ops: the engine's end-to-end check (overfit test)
 * and the workload of `npm run bench:engine`'s training step. The real model code lives in src/model/.
 */
import * as T from '../../src/tensor/index.js';
import { Rng, type Tensor } from '../../src/tensor/index.js';

export interface TinyConfig {
  vocab: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  ffn: number;
  seq: number;
}

export interface TinyModel {
  cfg: TinyConfig;
  params: Tensor[];
  forward(ids: Int32Array, B: number, Tn: number): Tensor;
}

export function tinyLlama(cfg: TinyConfig, seed = 0): TinyModel {
  const rng = new Rng(seed);
  const hd = cfg.dModel / cfg.nHeads;
  const std = 0.02;
  const mk = (shape: number[], name: string, s = std): Tensor => T.randn(shape, rng, s).param(name);
  const ones = (n: number, name: string): Tensor => T.ones([n]).param(name);
  const emb = mk([cfg.vocab, cfg.dModel], 'embed');
  const layers = Array.from({ length: cfg.nLayers }, (_, l) => ({
    attnNorm: ones(cfg.dModel, `l${l}.attn_norm`),
    wq: mk([cfg.nHeads * hd, cfg.dModel], `l${l}.wq`),
    wk: mk([cfg.nKvHeads * hd, cfg.dModel], `l${l}.wk`),
    wv: mk([cfg.nKvHeads * hd, cfg.dModel], `l${l}.wv`),
    wo: mk([cfg.dModel, cfg.nHeads * hd], `l${l}.wo`, std / Math.sqrt(2 * cfg.nLayers)),
    ffnNorm: ones(cfg.dModel, `l${l}.ffn_norm`),
    w1: mk([cfg.ffn, cfg.dModel], `l${l}.w1`),
    w3: mk([cfg.ffn, cfg.dModel], `l${l}.w3`),
    w2: mk([cfg.dModel, cfg.ffn], `l${l}.w2`, std / Math.sqrt(2 * cfg.nLayers)),
  }));
  const finalNorm = ones(cfg.dModel, 'final_norm');
  const params = [emb, finalNorm, ...layers.flatMap((l) => Object.values(l))];
  const invFreq = T.ropeInvFreq(hd, 10000);

  function forward(ids: Int32Array, B: number, Tn: number): Tensor {
    const positions = Int32Array.from({ length: Tn }, (_, i) => i);
    let x = T.embedding(emb, ids, [B, Tn]); // (B, T, D)
    for (const L of layers) {
      const h = T.rmsnorm(x, L.attnNorm, 1e-5);
      const q = T.rope(T.reshape(T.linear(h, L.wq), [B, Tn, cfg.nHeads, hd]), { positions, invFreq, style: 'half' });
      const k = T.rope(T.reshape(T.linear(h, L.wk), [B, Tn, cfg.nKvHeads, hd]), { positions, invFreq, style: 'half' });
      const v = T.reshape(T.linear(h, L.wv), [B, Tn, cfg.nKvHeads, hd]);
      const a = T.attention(q, k, v).out; // (B, T, Hq, hd)
      x = T.add(x, T.linear(T.reshape(a, [B, Tn, cfg.nHeads * hd]), L.wo));
      const f = T.rmsnorm(x, L.ffnNorm, 1e-5);
      const g = T.mul(T.silu(T.linear(f, L.w1)), T.linear(f, L.w3));
      x = T.add(x, T.linear(g, L.w2));
    }
    x = T.rmsnorm(x, finalNorm, 1e-5);
    return T.linear(x, emb); // tied head: (B, T, V)
  }
  return { cfg, params, forward };
}

/** Number of trainable values. */
export function paramCount(m: TinyModel): number {
  return m.params.reduce((s, p) => s + p.size, 0);
}

/** Model FLOPs of one forward+backward over `tokens` tokens (6N per token plus attention, PaLM appendix B). */
export function trainFlops(m: TinyModel, tokens: number): number {
  const { nLayers, dModel, seq } = m.cfg;
  return 6 * paramCount(m) * tokens + 12 * nLayers * dModel * seq * tokens;
}
