/**
 * Cache accounting and the baselines at equal cache (DESIGN: "Baselines at the same cache budget").
 *
 * A model's cache at n tokens is kvBytesPerToken * n + constantBytes (float32 keys and values of every KV head that
 * keeps attention, plus the recurrent heads' fixed state and the recurrent+window groups' full windows; at the
 * first sinks + window tokens those windows hold less, which Layout.bytesAt counts exactly). The baselines run on the ORIGINAL model and are sized to
 * hold the same bytes as the converted model at the length being evaluated:
 *
 *   streaming        StreamingLLM: every head keeps `sinks` + `window` tokens, with
 *                    (sinks + window) * fullKvBytesPerToken <= converted bytes at n tokens.
 *   streaming-heads  the converted model's replaced KV groups keep sinks + window tokens instead of a recurrent
 *                    state, with (sinks + window) * replacedBytesPerToken <= constantBytes; the other groups keep
 *                    their full KV exactly as in the converted model. Its window does not depend on n.
 */
import type { ModelConfig } from '../model/config.js';
import { Layout, type RecurformerSpec } from '../model/layout.js';
import { streamingHeadsMemory, streamingMemory, type HybridMemory } from '../inference/hybrid-memory.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';

export interface CacheProfile {
  /** Bytes per token of the KV heads that keep attention. */
  kvBytesPerToken: number;
  /**
   * Bytes of the recurrent heads' state (conv window included), independent of the length; with recurrent+window
   * groups also their exact windows' keys and values once full (sinks + window - 1 tokens: the most they hold).
   */
  constantBytes: number;
  /** Bytes per token before conversion (every KV head). */
  fullKvBytesPerToken: number;
  /** Replaced KV groups per layer. */
  groups: Map<number, number[]>;
}

export function cacheProfile(cfg: ModelConfig, spec: RecurformerSpec | null | undefined): CacheProfile {
  const groups = new Map<number, number[]>((spec?.layers ?? []).filter((l) => l.groups.length > 0).map((l) => [l.layer, [...l.groups]]));
  const layout = Layout.of(cfg, spec ?? null);
  return {
    kvBytesPerToken: layout.kvBytesPerToken(),
    constantBytes: layout.stateBytes() + layout.retained(Infinity, layout.headWindow) * layout.headWindowBytesPerToken(),
    fullKvBytesPerToken: layout.fullAttentionBytes(1),
    groups,
  };
}

/** Cache bytes after `tokens` tokens. */
export function cacheBytesAt(p: CacheProfile, tokens: number): number {
  return p.kvBytesPerToken * tokens + p.constantBytes;
}

export interface WindowBudget {
  sinks: number;
  window: number;
}

/** StreamingLLM's sinks + window holding no more than the converted model's cache at `tokens` tokens. */
export function streamingAtEqualCache(p: CacheProfile, tokens: number, sinks = 4): WindowBudget {
  const keep = Math.floor(cacheBytesAt(p, tokens) / p.fullKvBytesPerToken);
  return { sinks, window: Math.max(1, keep - sinks) };
}

/** Streaming heads: the replaced groups' sinks + window holding no more than the recurrent state. */
export function streamingHeadsAtEqualCache(p: CacheProfile, sinks = 4): WindowBudget {
  const perToken = p.fullKvBytesPerToken - p.kvBytesPerToken;
  if (perToken === 0) throw new ArgumentError('eval', '--equal-cache', 'the converted model replaces no KV group', 'pass a model made by `recurformer convert`');
  return { sinks, window: Math.max(1, Math.floor(p.constantBytes / perToken) - sinks) };
}

export type BaselineKind = 'streaming' | 'streaming-heads';

/**
 * A memory factory for the original model running `kind` at the cache of the converted model described by `p`
 * at `tokens` tokens.
 */
export function baselineAtEqualCache(kind: BaselineKind, p: CacheProfile, tokens: number, sinks = 4): (m: DecoderLM) => HybridMemory {
  if (kind === 'streaming') {
    const b = streamingAtEqualCache(p, tokens, sinks);
    return (m) => streamingMemory(m, b);
  }
  const b = streamingHeadsAtEqualCache(p, sinks);
  return (m) => {
    if (m.recurrent.size > 0) throw new ArgumentError('eval', '--memory', 'streaming-heads runs on the original model', 'pass the unconverted model');
    return streamingHeadsMemory(m, p.groups, b);
  };
}
