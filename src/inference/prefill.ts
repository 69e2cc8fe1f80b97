/**
 * Bounded prefill: a prompt enters a memory chunk by chunk, each chunk's forward in its own noGrad buffer scope, so
 * only one chunk's activations are alive at a time. Peak memory is weights + cache + O(chunk) activations whatever
 * the prompt length (one forward over a whole 8k prompt kept every layer's intermediates: about 1.4 MB per token
 * on SmolLM2-135M, 30 times its KV cache). Attention and the recurrent heads carry their cache / state across chunks,
 * so the result equals one forward over the whole prompt (test/inference/prefill-chunk.test.ts).
 */
import type { DecoderLM } from '../model/transformer.js';
import { noGrad, scope } from '../tensor/index.js';
import type { HybridMemory } from './hybrid-memory.js';

/** Default prefill chunk: large enough that the products stay matrix-matrix, small enough to bound activations. */
export const PREFILL_CHUNK = 512;

/** Feeds `ids` through `memory` in chunks and returns a copy of the last position's logits (V floats). */
export function prefillChunked(model: DecoderLM, ids: ArrayLike<number>, memory: HybridMemory, chunk = PREFILL_CHUNK): Float32Array {
  const n = ids.length;
  let last = new Float32Array(0);
  for (let at = 0; at < n; at += chunk) {
    const end = Math.min(n, at + chunk);
    const part = Int32Array.from({ length: end - at }, (_, i) => ids[at + i]!);
    noGrad(() => scope(() => {
      const logits = model.forward(part, 1, end - at, { memory, lastOnly: true });
      if (end === n) last = Float32Array.from(logits.data);
    }));
  }
  return last;
}
