/**
 * The eval report: one self-contained HTML page (inline CSS and SVG, no scripts or network) from any set of
 * EvalRecords (src/eval/record.ts), grouped by task:
 *   passkey / hashhop / needle  accuracy-vs-length lines (one per record label, log length axis) and a length x
 *                               depth (or hops) heat map of accuracy per record, with a color legend;
 *   ppl                         a bar chart of perplexity per label and a table;
 *   agree                       a table (match, KL, top-1 of student and teacher);
 *   cost                        a table and grouped bars of cache MiB at each length, one bar per label.
 * The charts are Vega-Lite specs rendered to SVG (./charts.ts); a label keeps one color (tableau20: 20 distinct)
 * in every chart and in the tables' swatches. Every task's main chart carries data-chart="<task>" (the tests count them).
 */
import type { AgreeResult } from '../eval/agree.js';
import type { CostResult } from '../eval/cost.js';
import type { PplResult } from '../eval/perplexity.js';
import type { EvalRecord, EvalTask, RetrievalCell, RetrievalResult } from '../eval/record.js';
import { FormatError } from '../tensor/errors.js';
import { barChart, colorsFor, groupedBarChart, heatmap, lineChart, type Colors } from './charts.js';
import { esc, fmt } from './svg.js';

const TASKS: readonly EvalTask[] = ['passkey', 'hashhop', 'needle', 'ppl', 'agree', 'cost'];
const RETRIEVAL: readonly EvalTask[] = ['passkey', 'hashhop', 'needle'];

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
.row{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}.fig{margin:4px 0}.fig h3{font-size:14px;margin:4px 0}
svg.chart{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f3f3f3}td.l{text-align:left}.note{color:#666;font-size:12px}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}`;

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isNum = (x: unknown): x is number => typeof x === 'number';

/** The fields a task's result must have (numbers), checked by parseEvalRecord. */
const RESULT_NUMBERS: Partial<Record<EvalTask, string[]>> = {
  ppl: ['nll', 'ppl', 'tokens'],
  agree: ['match', 'kl', 'tokens', 'studentTop1', 'teacherTop1'],
  cost: ['kvBytesPerToken', 'constantBytes'],
  passkey: ['accuracy'], hashhop: ['accuracy'], needle: ['accuracy'],
};

/** Checks one EvalRecord JSON value; a FormatError names `file` and the first problem. */
export function checkEvalRecord(x: unknown, file: string): EvalRecord {
  const bad = (what: string): never => {
    throw new FormatError(file, `is not a recurformer eval record: ${what}`, 'pass files written by `recurformer eval <task> --out FILE` (or its --json output)');
  };
  if (!isObj(x)) return bad('not a JSON object');
  if (x.schema !== 'recurformer.eval') return bad(`schema is ${JSON.stringify(x.schema)}, expected "recurformer.eval"`);
  if (x.version !== 1) return bad(`version ${JSON.stringify(x.version)} is not supported (expected 1)`);
  if (!TASKS.includes(x.task as EvalTask)) return bad(`task ${JSON.stringify(x.task)} is not one of ${TASKS.join(', ')}`);
  for (const k of ['model', 'memory', 'label']) if (typeof x[k] !== 'string') bad(`${k} is not a string`);
  if (!isObj(x.settings)) bad('settings is not an object');
  if (!isObj(x.result)) return bad('result is not an object');
  const r = x.result;
  for (const k of RESULT_NUMBERS[x.task as EvalTask] ?? []) if (!isNum(r[k])) bad(`result.${k} is not a number`);
  if (RETRIEVAL.includes(x.task as EvalTask)) {
    if (!Array.isArray(r.cells) || !Array.isArray(r.byLength)) bad('result.cells / result.byLength are not arrays');
    (r.cells as unknown[]).forEach((c, i) => {
      if (!isObj(c) || !isNum(c.length) || !isNum(c.accuracy)) bad(`result.cells[${i}] has no numeric length and accuracy`);
    });
  }
  if (x.task === 'cost' && (!Array.isArray(r.lengths) || !isObj(r.prefill) || !isObj(r.decode))) bad('result.lengths / prefill / decode are missing');
  return x as unknown as EvalRecord;
}

/** A settings value for a table cell ('' when absent). */
function setting(rec: EvalRecord, key: string): string {
  const v = rec.settings[key];
  if (v === undefined || v === null) return '';
  return esc(typeof v === 'object' ? JSON.stringify(v) : String(v));
}

function table(head: readonly string[], rows: readonly string[][]): string {
  return `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${rows.map((r) => `<tr>${r.map((c, i) =>
    `<td${i === 0 ? ' class="l"' : ''}>${c}</td>`).join('')}</tr>`).join('')}</table>`;
}

function fig(title: string, body: string, chart?: EvalTask): string {
  return `<div class="fig"${chart ? ` data-chart="${chart}"` : ''}><h3>${esc(title)}</h3>${body}</div>`;
}

/** The label cell: a color swatch matching the charts, then the label. */
function labelCell(rec: EvalRecord, colors: Colors): string {
  const c = colors.range[colors.domain.indexOf(rec.label)] ?? '#999';
  return `<span class="swatch" style="background:${c}"></span>${esc(rec.label)}`;
}

/** The second axis of a retrieval task's cells: hops for hashhop, depth otherwise. */
function secondAxis(cells: readonly RetrievalCell[]): { key: 'depth' | 'hops' | null; name: string } {
  if (cells.some((c) => c.hops !== undefined)) return { key: 'hops', name: 'hops' };
  if (cells.some((c) => c.depth !== undefined)) return { key: 'depth', name: 'depth' };
  return { key: null, name: '' };
}

async function retrievalHeatmap(rec: EvalRecord<RetrievalResult>, idx: number): Promise<string> {
  const cells = rec.result.cells;
  const ax = secondAxis(cells);
  const lengths = [...new Set(cells.map((c) => c.length))].sort((a, b) => a - b);
  const seconds = ax.key ? [...new Set(cells.map((c) => c[ax.key!] ?? 0))].sort((a, b) => a - b) : [0];
  // depths with 2 decimals unless that merges two of them
  const short = new Set(seconds.map((d) => fmt(d, 2))).size === seconds.length;
  const colName = (d: number): string => (ax.key === null ? 'all' : ax.key === 'depth' && short ? fmt(d, 2) : String(d));
  const at = (L: number, d: number): RetrievalCell | undefined => cells.find((c) => c.length === L && (ax.key === null || (c[ax.key] ?? 0) === d));
  const grid = lengths.flatMap((L) => seconds.map((d) => {
    const c = at(L, d);
    return {
      row: String(L), col: colName(d), value: c?.accuracy ?? null,
      title: c ? `length ${c.length}${ax.key ? `, ${ax.name} ${c[ax.key]}` : ''}: ${c.correct}/${c.n} correct (${fmt(c.accuracy)}), mean ${fmt(c.meanTokens, 0)} tokens`
        : `length ${L}${ax.key ? `, ${ax.name} ${d}` : ''}: no data`,
    };
  }));
  const svg = await heatmap(grid, {
    rows: lengths.map(String), cols: seconds.map(colName), rowTitle: 'length (tokens)', colTitle: ax.name || 'all', valueTitle: 'accuracy',
    cell: [40, 24], data: { metric: `${rec.task}-${idx}` },
  });
  return fig(`${rec.label}: accuracy by length x ${ax.name || 'cell'}`, svg);
}

async function retrievalSection(task: EvalTask, recs: readonly EvalRecord<RetrievalResult>[], colors: Colors): Promise<string> {
  const series = recs.map((r) => ({ name: r.label, points: r.result.byLength.map((b): [number, number] => [b.length, b.accuracy]) }));
  const chart = fig(`${task}: accuracy vs length`, await lineChart(series, { xTitle: 'length (tokens)', yTitle: 'accuracy', logX: true, yDomain: [0, 1], colors }), task);
  const rows = recs.map((r) => [labelCell(r, colors), fmt(r.result.accuracy), fmt(r.result.chance, 6), esc(r.model), esc(r.memory), esc(r.equalCache ?? ''), esc(r.seed ?? '')]);
  const maps: string[] = [];
  for (const [i, r] of recs.entries()) maps.push(await retrievalHeatmap(r, i));
  return `<h2>${esc(task)}</h2><div class="row">${chart}</div>
${table(['label', 'accuracy', 'chance', 'model', 'memory', 'equal cache', 'seed'], rows)}
<div class="row">${maps.join('')}</div>`;
}

async function pplSection(recs: readonly EvalRecord<PplResult>[], colors: Colors): Promise<string> {
  const colorOf = (label: string): string => colors.range[colors.domain.indexOf(label)] ?? '#999';
  const bars = await barChart(recs.map((r) => ({ label: r.label, value: r.result.ppl, color: colorOf(r.label), title: `${r.label}: ppl ${fmt(r.result.ppl)} (nll ${fmt(r.result.nll, 4)})` })),
    { xTitle: 'label', yTitle: 'perplexity' });
  const rows = recs.map((r) => [labelCell(r, colors), fmt(r.result.ppl), fmt(r.result.nll, 4), String(r.result.tokens), setting(r, 'ctx'), setting(r, 'stride'),
    esc(r.memory), esc(r.equalCache ?? ''), setting(r, 'data')]);
  return `<h2>Perplexity</h2><div class="row">${fig('perplexity per label (lower is better)', bars, 'ppl')}</div>
${table(['label', 'ppl', 'nll', 'tokens', 'ctx', 'stride', 'memory', 'equal cache', 'data'], rows)}`;
}

function agreeSection(recs: readonly EvalRecord<AgreeResult>[], colors: Colors): string {
  const rows = recs.map((r) => [labelCell(r, colors), fmt(r.result.match, 4), fmt(r.result.kl, 5), fmt(r.result.studentTop1, 4), fmt(r.result.teacherTop1, 4),
    String(r.result.tokens), setting(r, 'teacher'), esc(r.memory), esc(r.equalCache ?? ''), setting(r, 'ctx')]);
  return `<h2>Agreement with the teacher</h2><div data-chart="agree">
${table(['label', 'greedy match', 'mean KL (nats)', 'student top-1', 'teacher top-1', 'positions', 'teacher', 'memory', 'equal cache', 'ctx'], rows)}</div>`;
}

const mib = (b: number): string => fmt(b / 2 ** 20, 3);


async function costSection(recs: readonly EvalRecord<CostResult>[], colors: Colors): Promise<string> {
  const lengths = [...new Set(recs.flatMap((r) => r.result.lengths.map((l) => l.length)))].sort((a, b) => a - b);
  const bars = lengths.flatMap((L) => recs.flatMap((r) => {
    const at = r.result.lengths.find((l) => l.length === L);
    return at ? [{ group: String(L), series: r.label, value: at.bytes / 2 ** 20,
      title: `${r.label} at ${L} tokens: ${mib(at.bytes)} MiB (full attention ${mib(at.fullAttentionBytes)} MiB)` }] : [];
  }));
  const chart = await groupedBarChart(bars, { xTitle: 'length (tokens)', yTitle: 'cache (MiB)', colors });
  const rows = recs.map((r) => [labelCell(r, colors), String(r.result.kvBytesPerToken), String(r.result.constantBytes),
    ...lengths.map((L) => { const at = r.result.lengths.find((l) => l.length === L); return at ? mib(at.bytes) : ''; }),
    fmt(r.result.prefill.tokPerS, 1), fmt(r.result.decode.tokPerS, 1), String(r.result.decode.at), esc(r.memory), esc(r.equalCache ?? '')]);
  return `<h2>Cost</h2><div class="row">${fig('cache MiB at each length', chart, 'cost')}</div>
${table(['label', 'KV bytes/token', 'constant bytes', ...lengths.map((L) => `MiB @${L}`), 'prefill tok/s', 'decode tok/s', 'decode at', 'memory', 'equal cache'], rows)}
<p class="note">KV bytes per token and constant bytes are the model's own cache; MiB columns are what the memory in use holds.</p>`;
}

/** The whole page for `records` (any tasks, any order). Async: the charts render through vega's View.toSVG(). */
export async function renderEvalReport(records: readonly EvalRecord[], title: string): Promise<string> {
  const labels = [...new Set(records.map((r) => r.label))];
  const colors = colorsFor(labels);
  const of = <R>(t: EvalTask): EvalRecord<R>[] => records.filter((r) => r.task === t) as EvalRecord<R>[];
  const sections: string[] = [];
  for (const t of TASKS.filter((x) => of(x).length > 0)) {
    if (RETRIEVAL.includes(t)) sections.push(await retrievalSection(t, of<RetrievalResult>(t), colors));
    else if (t === 'ppl') sections.push(await pplSection(of<PplResult>(t), colors));
    else if (t === 'agree') sections.push(agreeSection(of<AgreeResult>(t), colors));
    else sections.push(await costSection(of<CostResult>(t), colors));
  }
  const runs = table(['label', 'task', 'model', 'memory', 'equal cache', 'seconds'],
    records.map((r) => [labelCell(r, colors), esc(r.task), esc(r.model), esc(r.memory), esc(r.equalCache ?? ''), fmt(r.seconds, 1)]));
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${CSS}</style></head><body>
<h1>${esc(title)}</h1>
<p>${records.length} records, ${labels.length} labels. Made by <code>recurformer eval report</code>; see docs/eval.md.</p>
${sections.join('\n')}
<h2>Runs</h2>${runs}
</body></html>
`;
}
