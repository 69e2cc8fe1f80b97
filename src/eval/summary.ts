/**
 * The results table: one row per evaluated configuration (label), built from the eval records of a run. Used by
 * `npm run demo` and the end-to-end script to print the table and write docs/results.md and the README's table.
 */
import type { CostResult } from './cost.js';
import type { AgreeResult } from './agree.js';
import type { EvalRecord, RetrievalResult } from './record.js';

export interface SummaryRow {
  label: string;
  /**
   * KV bytes per token of the model's own memory (null for the baselines: their cache is sized to the converted
   * model's bytes at each evaluated length, see cacheBytes).
   */
  kvBytesPerToken: number | null;
  /** Cache bytes at `cacheAt` tokens. */
  cacheBytes: number | null;
  ppl: number | null;
  /** Relative perplexity change against the row labelled `original`. */
  pplChange: number | null;
  /** Accuracy at each of `lengths` (null where not run). */
  passkey: (number | null)[];
  hashhop: (number | null)[];
  needle: (number | null)[];
  /** Greedy token match with the original model (teacher-forced). */
  agree: number | null;
  kl: number | null;
  decodeTokPerSec: number | null;
}

export interface Summary {
  lengths: number[];
  cacheAt: number | null;
  decodeAt: number | null;
  rows: SummaryRow[];
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function byLength(r: RetrievalResult | undefined, lengths: number[]): (number | null)[] {
  return lengths.map((L) => r?.byLength.find((b) => b.length === L)?.accuracy ?? null);
}


/** Rows in the order labels first appear in `records`. */
export function summarize(records: readonly EvalRecord[]): Summary {
  const labels = [...new Set(records.map((r) => r.label))];
  const find = (label: string, task: EvalRecord['task']): EvalRecord | undefined => records.find((r) => r.label === label && r.task === task);
  const lengths = [...new Set(records.filter((r) => ['passkey', 'hashhop', 'needle'].includes(r.task))
    .flatMap((r) => (r.result as RetrievalResult).byLength.map((b) => b.length)))].sort((a, b) => a - b);
  const costs = records.filter((r) => r.task === 'cost').map((r) => r.result as CostResult);
  const cacheAt = costs[0]?.lengths.at(-1)?.length ?? null;
  const decodeAt = num(costs[0]?.decode?.at);
  const basePpl = num((find('original', 'ppl')?.result as { ppl?: number } | undefined)?.ppl);
  const rows = labels.map((label): SummaryRow => {
    const cost = find(label, 'cost')?.result as CostResult | undefined;
    const ppl = num((find(label, 'ppl')?.result as { ppl?: number } | undefined)?.ppl);
    const agree = find(label, 'agree')?.result as AgreeResult | undefined;
    const memory = find(label, 'cost')?.memory;
    return {
      label,
      kvBytesPerToken: memory === 'full' ? num(cost?.kvBytesPerToken) : null,
      cacheBytes: num(cost?.lengths.find((t) => t.length === cacheAt)?.bytes),
      ppl,
      pplChange: ppl !== null && basePpl !== null ? ppl / basePpl - 1 : null,
      passkey: byLength(find(label, 'passkey')?.result as RetrievalResult | undefined, lengths),
      hashhop: byLength(find(label, 'hashhop')?.result as RetrievalResult | undefined, lengths),
      needle: byLength(find(label, 'needle')?.result as RetrievalResult | undefined, lengths),
      agree: num(agree?.match),
      kl: num(agree?.kl),
      decodeTokPerSec: num(cost?.decode.tokPerS),
    };
  });
  return { lengths, cacheAt, decodeAt, rows };
}

const fmt = (v: number | null, digits: number): string => (v === null ? '–' : v.toFixed(digits));
/** Accuracies by length, "1.00 / 0.50" ('–' where not run). */
export const formatAccuracies = (v: (number | null)[]): string => (v.every((x) => x === null) ? '–' : v.map((x) => fmt(x, 2)).join(' / '));
/** A relative change as a signed percentage, "+2.5%". */
export const formatChange = (v: number | null): string => (v === null ? '–' : `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)}%`);
const kib = (v: number | null): string => (v === null ? '–' : `${(v / 1024).toFixed(v < 10240 ? 1 : 0)} KiB`);

/**
 * A GitHub-flavoured markdown table of the summary. It leaves out decode tokens/s: the evals that produce these
 * records share the host with each other and with other jobs, so their speeds do not compare across rows (the
 * summary keeps the measured rate for scripts; controlled figures come from `npm run bench:cache`).
 */
export function markdownTable(s: Summary): string {
  const L = s.lengths.join(' / ');
  const head = ['configuration', 'KV bytes/token', `cache @ ${s.cacheAt ?? '?'} tok`, 'perplexity', 'Δ ppl',
    `passkey @ ${L}`, `hashhop @ ${L}`, `needle @ ${L}`, 'agree (KL)'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of s.rows) {
    const cells = [r.label, r.kvBytesPerToken === null ? '–' : r.kvBytesPerToken.toLocaleString('en-US'), kib(r.cacheBytes),
      fmt(r.ppl, 3), formatChange(r.pplChange), formatAccuracies(r.passkey), formatAccuracies(r.hashhop), formatAccuracies(r.needle),
      r.agree === null ? '–' : `${fmt(r.agree, 3)} (${fmt(r.kl, 3)})`];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}
