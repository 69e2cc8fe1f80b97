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
  /** The same against the control (CONTROL_LABEL: the original trained like the converted models), when there is one. */
  pplVsControl: number | null;
  /** Right answers of the prompts at each of `lengths` (null where not run). */
  passkey: (Count | null)[];
  hashhop: (Count | null)[];
  /** HashHop split by the number of hops (ascending), each by length as `hashhop`; empty where it did not run. */
  hashhopByHops: { hops: number; counts: (Count | null)[] }[];
  needle: (Count | null)[];
  /** Greedy token match with the original model (teacher-forced). */
  agree: number | null;
  kl: number | null;
  decodeTokPerSec: number | null;
}

/** Right answers out of n prompts. */
export interface Count {
  correct: number;
  n: number;
}

export interface Summary {
  lengths: number[];
  cacheAt: number | null;
  decodeAt: number | null;
  rows: SummaryRow[];
}

/**
 * The label of the control row: the original model trained through the same stages, data and steps as the converted
 * models (scripts/experiment/pipeline.ts), so a perplexity change against it is the conversion's, not the training's.
 */
export const CONTROL_LABEL = 'original, trained the same (control)';

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function byLength(r: RetrievalResult | undefined, lengths: number[]): (Count | null)[] {
  return lengths.map((L) => {
    const b = r?.byLength.find((x) => x.length === L);
    return b ? { correct: Math.round(b.accuracy * b.n), n: b.n } : null;
  });
}

/** HashHop's right answers by number of hops, then by length (its cells carry both). */
function byHops(r: RetrievalResult | undefined, lengths: number[]): { hops: number; counts: (Count | null)[] }[] {
  const cells = r?.cells ?? [];
  const hops = [...new Set(cells.map((c) => c.hops).filter((h): h is number => h !== undefined))].sort((a, b) => a - b);
  return hops.map((h) => ({
    hops: h,
    counts: lengths.map((L) => {
      const mine = cells.filter((c) => c.hops === h && c.length === L);
      return mine.length ? { correct: mine.reduce((a, c) => a + c.correct, 0), n: mine.reduce((a, c) => a + c.n, 0) } : null;
    }),
  }));
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
  const controlPpl = num((find(CONTROL_LABEL, 'ppl')?.result as { ppl?: number } | undefined)?.ppl);
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
      pplVsControl: ppl !== null && controlPpl !== null && label !== 'original' ? ppl / controlPpl - 1 : null,
      passkey: byLength(find(label, 'passkey')?.result as RetrievalResult | undefined, lengths),
      hashhop: byLength(find(label, 'hashhop')?.result as RetrievalResult | undefined, lengths),
      hashhopByHops: byHops(find(label, 'hashhop')?.result as RetrievalResult | undefined, lengths),
      needle: byLength(find(label, 'needle')?.result as RetrievalResult | undefined, lengths),
      agree: num(agree?.match),
      kl: num(agree?.kl),
      decodeTokPerSec: num(cost?.decode.tokPerS),
    };
  });
  return { lengths, cacheAt, decodeAt, rows };
}

/** A named count series of the table: its right answers by length for a row. */
type Series = [name: string, of: (r: SummaryRow) => (Count | null)[]];
/** HashHop's series: one per number of hops ("hashhop 2 hops"), or all hops together where no record counts hops. */
function hashhopSeries(hops: readonly number[]): Series[] {
  if (hops.length === 0) return [['hashhop', (r) => r.hashhop]];
  return hops.map((h): Series => [`hashhop ${h} hop${h === 1 ? '' : 's'}`, (r) => r.hashhopByHops.find((x) => x.hops === h)?.counts ?? []]);
}

const fmt = (v: number | null, digits: number): string => (v === null ? '–' : v.toFixed(digits));
/** Right answers by length, "40/40, 38/40" ('–' where not run): counts, so a reader sees how many prompts a rate stands on. */
export const formatCounts = (v: (Count | null)[]): string =>
  (v.every((x) => x === null) ? '–' : v.map((x) => (x === null ? '–' : `${x.correct}/${x.n}`)).join(', '));
/** A relative change as a signed percentage, "+2.5%". */
export const formatChange = (v: number | null): string => (v === null ? '–' : `${v >= 0 ? '+' : ''}${(v * 100).toFixed(1)}%`);
const kib = (v: number | null): string => (v === null ? '–' : `${(v / 1024).toFixed(v < 10240 ? 1 : 0)} KiB`);

/**
 * A GitHub-flavoured markdown table of the summary. It leaves out decode tokens/s: the evals that produce these
 * records share the host with each other and with other jobs, so their speeds do not compare across rows (the
 * summary keeps the measured rate for scripts; controlled figures come from `npm run bench:cache`).
 */
export function markdownTable(s: Summary): string {
  const L = s.lengths.join(', ');
  const control = s.rows.some((r) => r.pplVsControl !== null);
  // a retrieval task or agreement that no configuration ran gets no column; HashHop gets one per number of hops
  const ran = (t: 'passkey' | 'hashhop' | 'needle'): boolean => s.rows.some((r) => r[t].some((c) => c !== null));
  const hops = [...new Set(s.rows.flatMap((r) => r.hashhopByHops.map((h) => h.hops)))].sort((a, b) => a - b);
  type Column = [head: string, cell: (r: SummaryRow) => string];
  const counts = (head: string, of: (r: SummaryRow) => (Count | null)[]): Column => [`${head} @ ${L}`, (r) => formatCounts(of(r))];
  const hashhop = hashhopSeries(hops).map(([name, of]) => counts(name, of));
  const retrieval: Column[] = [
    ...(ran('passkey') ? [counts('passkey', (r) => r.passkey)] : []),
    ...(ran('hashhop') ? hashhop : []),
    ...(ran('needle') ? [counts('needle', (r) => r.needle)] : []),
  ];
  const agree = s.rows.some((r) => r.agree !== null);
  const head = ['configuration', 'KV bytes/token', `cache @ ${s.cacheAt ?? '?'} tok`, 'perplexity', 'Δ ppl', ...(control ? ['Δ vs control'] : []),
    ...retrieval.map(([h]) => h), ...(agree ? ['agree (KL)'] : [])];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of s.rows) {
    const cells = [r.label, r.kvBytesPerToken === null ? '–' : r.kvBytesPerToken.toLocaleString('en-US'), kib(r.cacheBytes),
      fmt(r.ppl, 3), formatChange(r.pplChange), ...(control ? [formatChange(r.pplVsControl)] : []), ...retrieval.map(([, cell]) => cell(r)),
      ...(agree ? [r.agree === null ? '–' : `${fmt(r.agree, 3)} (${fmt(r.kl, 3)})`] : [])];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** The sinks and recent tokens an eviction baseline kept at each length (its record's settings), if it says. */
function windowsOf(r: EvalRecord | undefined): Map<number, { sinks: number; window: number }> {
  const w = (r?.settings as { windows?: { length: number; sinks: number; window: number }[] } | undefined)?.windows ?? [];
  return new Map(w.map((x) => [x.length, { sinks: x.sinks, window: x.window }]));
}

/**
 * Where each configuration's retrieval breaks, one line each: the first evaluated length at which its passkey, needle
 * or HashHop count (HashHop by number of hops, where its records say) falls more than one prompt below the original's
 * at that length, or "holds" to the longest when none does. A baseline that evicts says what its cache kept there.
 * `s` is summarize(records), if the caller has it.
 */
export function whereItBreaks(records: readonly EvalRecord[], s: Summary = summarize(records)): string[] {
  const original = s.rows.find((r) => r.label === 'original');
  if (!original) return [];
  const all: Series[] = [['passkey', (r) => r.passkey], ['needle', (r) => r.needle],
    ...hashhopSeries(original.hashhopByHops.map((h) => h.hops))];
  const series = all.filter(([, of]) => of(original).some((c) => c !== null));
  const at = (r: SummaryRow, i: number): string => series.map(([name, of]) => `${name} ${formatCounts([of(r)[i] ?? null])}`).join(', ');
  // a configuration breaks where it is more than one prompt below the original: an original that never gets two
  // right leaves nothing to lose, and a line per configuration saying that it "holds" would claim what was not shown
  if (series.length > 0 && !series.some(([, of]) => of(original).some((c) => c !== null && c.correct >= 2))) {
    const last = s.lengths.length - 1;
    return [`none can break: the original retrieves at most one prompt per length (at ${s.lengths[last]} tokens: ${at(original, last)}), so there is no retrieval to lose`];
  }
  const lines: string[] = [];
  for (const r of s.rows) {
    if (r === original || series.every(([, of]) => of(r).every((c) => c === null))) continue;
    const i = s.lengths.findIndex((_, k) => series.some(([, of]) => {
      const mine = of(r)[k], base = of(original)[k];
      return mine && base && mine.correct < base.correct - 1;
    }));
    if (i < 0) {
      const last = s.lengths.length - 1;
      lines.push(`${r.label}: holds to ${s.lengths[last]} tokens (${at(r, last)}; the original ${at(original, last)})`);
      continue;
    }
    const kept = windowsOf(records.find((x) => x.label === r.label && ['passkey', 'needle', 'hashhop'].includes(x.task))).get(s.lengths[i]!);
    lines.push(`${r.label}: breaks at ${s.lengths[i]} tokens (${at(r, i)}; the original ${at(original, i)})` +
      (kept ? `: its cache keeps ${kept.sinks} sinks + ${kept.window} recent tokens there` : ''));
  }
  return lines;
}
