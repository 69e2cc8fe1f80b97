/**
 * The JSON every `recurformer eval <task> --json` prints (and `--out FILE` writes): one record per run, the same
 * envelope for every task so reports and scripts can collect them. Documented in docs/eval.md.
 */
export type EvalTask = 'ppl' | 'passkey' | 'hashhop' | 'needle' | 'agree' | 'cost';
export type MemoryKind = 'full' | 'streaming' | 'streaming-heads';

export interface EvalRecord<R = unknown> {
  schema: 'recurformer.eval';
  version: 1;
  task: EvalTask;
  /** The model evaluated (path as given). */
  model: string;
  /** The memory it ran with: full = the model's own (full KV, or hybrid for a converted model). */
  memory: MemoryKind;
  /** The converted model whose cache the baseline was sized to (--equal-cache), or null. */
  equalCache: string | null;
  /** A free label for tables and charts (--label), default derived from model and memory. */
  label: string;
  seed: number | null;
  /** The task's settings as run (lengths, depths, ctx, stride, ...). */
  settings: Record<string, unknown>;
  result: R;
  /** Wall-clock seconds of the run. */
  seconds: number;
}

/** Accuracy of one (length, depth or hops) cell of a retrieval task. */
export interface RetrievalCell {
  /** Target prompt length in tokens. */
  length: number;
  depth?: number;
  hops?: number;
  n: number;
  correct: number;
  accuracy: number;
  /** Mean actual prompt tokens (BOS included). */
  meanTokens: number;
}

/** One case the model got wrong: where it was, what was asked for and what came out. */
export interface RetrievalMiss {
  length: number;
  depth?: number;
  hops?: number;
  /** The case's index within its cell (its seed: retrieval-cases.ts caseSeed). */
  sample: number;
  /** The expected answer (with its leading space). */
  expected: string;
  /** The decoded continuation. */
  got: string;
}

export interface RetrievalResult {
  cells: RetrievalCell[];
  /** Every wrong case, in cell then sample order (empty when all are right). */
  misses: RetrievalMiss[];
  byLength: { length: number; n: number; accuracy: number }[];
  accuracy: number;
  /** Accuracy of guessing (e.g. 1e-5 for a 5-digit key). */
  chance: number;
}

export function evalRecord<R>(fields: Omit<EvalRecord<R>, 'schema' | 'version'>): EvalRecord<R> {
  return { schema: 'recurformer.eval', version: 1, ...fields };
}
