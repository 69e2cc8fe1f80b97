/**
 * report.html for an analysis: one self-contained page (inline CSS and SVG; no scripts, fonts or network) that
 * shows a model's heads at a glance: layer x head heat maps of RR, RRw and sink mass (with color legends), the RR
 * distribution, attention maps of a few telling heads, massive activations and value norms, and the waiver test table.
 * The charts are Vega-Lite specs rendered to SVG (./charts.ts); heads are named "L0 H2" (layer 0, head 2) throughout.
 */
import type { AttentionMap, Analysis } from '../analysis/schema.js';
import { barChart, colorsFor, groupedBarChart, headLabel, heatmap, histogram, type HeatCell } from './charts.js';
import { esc, fmt } from './svg.js';

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
.row{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}.fig{margin:4px 0}
.fig h3{font-size:14px;margin:4px 0}svg.chart{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f3f3f3}.feature{background:#dbeafe}.positional{background:#fde2c8}.inconclusive{color:#777}
.verdict{font-size:16px;font-weight:600}.note{color:#666;font-size:12px}`;

/** A layer x head heat map of one per-head score in [0, 1] (data-metric names it), a tooltip per head. */
function headHeatmap(a: Analysis, metric: string, name: string, value: (h: Analysis['heads'][number]) => number | null): Promise<string> {
  const { nLayers: L, nHeads: H } = a.model;
  const cells: HeatCell[] = a.heads.map((h) => ({
    row: `L${h.layer}`, col: `H${h.head}`, value: value(h),
    title: `${headLabel(h.layer, h.head)} (layer ${h.layer}, head ${h.head}, KV group ${h.kvGroup}): ${name} = ${fmt(value(h))}; ` +
      `sink ${fmt(h.sink)}, entropy ${fmt(h.entropy, 2)} nats, mean distance ${fmt(h.meanDistance, 1)}`,
  }));
  const cw = Math.max(10, Math.min(30, Math.floor(560 / Math.max(1, H)))), ch = Math.max(8, Math.min(24, Math.floor(480 / Math.max(1, L))));
  return heatmap(cells, {
    rows: Array.from({ length: L }, (_, l) => `L${l}`), cols: Array.from({ length: H }, (_, h) => `H${h}`),
    rowTitle: 'layer', colTitle: 'head', valueTitle: name, cell: [cw, ch], every: cw < 14 || ch < 12 ? 4 : cw < 20 ? 2 : 1, data: { metric },
  });
}

/** A causal attention map (lower triangle; weights under 0.005 left grey), a sqrt color scale to show small weights. */
function attentionMap(m: AttentionMap): Promise<string> {
  const n = m.size, pos = Array.from({ length: n }, (_, i) => String(i));
  const cells: HeatCell[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const p = m.probs[i * n + j]!;
      if (p >= 0.005) cells.push({ row: pos[i]!, col: pos[j]!, value: p, title: `query ${i} -> key ${j}: ${fmt(p, 4)}` });
    }
  }
  const cs = Math.max(3, Math.floor(240 / Math.max(1, n)));
  return heatmap(cells, {
    rows: pos, cols: pos, rowTitle: 'query position', colTitle: 'key position', valueTitle: 'attention weight', scale: 'sqrt',
    cell: [cs, cs], labels: false, every: Math.max(1, Math.ceil(n / 8)), fill: '#f0f0f0', data: { metric: `map-${m.layer}-${m.head}` },
  });
}

function fig(title: string, body: string): string {
  return `<div class="fig"><h3>${esc(title)}</h3>${body}</div>`;
}

function waiverTable(a: Analysis): string {
  const L = a.model.nLayers, w = a.waiver;
  let s = '<table><tr><th>test</th>';
  for (let l = 0; l < L; l++) s += `<th>L${l}</th>`;
  s += '</tr><tr><th>baseline sink mass</th>';
  for (const b of w.tests.baseline) s += `<td>${fmt(b.sinkMass)}</td>`;
  s += '</tr>';
  for (const t of w.tests.tests) {
    s += `<tr><th title="${esc(t.note)}">${esc(t.test)}<br><span class="note">${esc(t.note)}</span></th>`;
    for (const p of t.perLayer) {
      const nums = Object.entries(p.values).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : fmt(v)}`).join('<br>');
      s += `<td class="${p.vote}"><b>${p.vote}</b><br>${nums}</td>`;
    }
    s += '</tr>';
  }
  s += '<tr><th>layer verdict (lean)</th>';
  for (const p of w.perLayer) s += `<td><b>${esc(p.verdict)}</b><br>(${esc(p.lean)})</td>`;
  return `${s}</tr></table>`;
}

/** The retrieval probe's section: a bar per KV group (answer NLL increase when windowed), the baseline, the settings. */
async function retrievalSection(a: Analysis): Promise<string> {
  const p = a.retrieval;
  if (!p) return '';
  const s = p.settings;
  const bars = await barChart(p.groups.map((g) => ({
    label: `L${g.layer} G${g.kvGroup}`, value: Math.max(0, g.harm),
    title: `L${g.layer} G${g.kvGroup} (layer ${g.layer}, KV group ${g.kvGroup}): answer NLL ${fmt(g.nll, 3)} nats (+${fmt(g.harm, 3)}), accuracy ${fmt(g.accuracy, 2)}`,
  })), { xTitle: 'KV group', yTitle: 'answer NLL increase (nats)' });
  return `<h2>Retrieval probe (which groups long-range retrieval needs)</h2>
<p>${p.prompts} passkey prompts of ${s.length} tokens (key depths ${s.depths.join(', ')}, seed ${s.seed}); full attention: answer NLL
${fmt(p.baseline.nll, 3)} nats, accuracy ${fmt(p.baseline.accuracy, 2)}. Each bar: the NLL increase when that group alone keeps only
${s.sinks} sinks + ${s.window} recent keys. convert keeps the groups above its --protect-retrieval threshold as attention.</p>
<div class="row">${fig('answer NLL increase per KV group (nats)', bars)}</div>`;
}

/** The whole page. Async: the charts render through vega's View.toSVG(). */
export async function renderReport(a: Analysis): Promise<string> {
  const { nLayers: L, nHeads: H } = a.model;
  const ks = a.settings.windows.map(String);
  const mid = ks[Math.floor(ks.length / 2)]!;
  const heat: string[] = [];
  for (const k of ks) heat.push(fig(`RR(${k})`, await headHeatmap(a, `rr${k}`, `RR(${k})`, (h) => h.rr[k] ?? null)));
  for (const k of ks) heat.push(fig(`RRw(${k})`, await headHeatmap(a, `rrw${k}`, `RRw(${k})`, (h) => h.rrw[k] ?? null)));
  const sinks = fig('sink mass (position 0)', await headHeatmap(a, 'sink', 'sink mass', (h) => h.sink))
    + fig('mass on the first 4 positions', await headHeatmap(a, 'sinkFirst4', 'first-4 mass', (h) => h.sinkFirst4));
  const dist: string[] = [];
  for (const k of ks) dist.push(fig(`RR(${k}) over heads`, await histogram(a.heads.map((h) => h.rr[k] ?? NaN), 10, { xTitle: `RR(${k})`, what: 'heads' })));
  const maps: string[] = [];
  for (const m of a.maps) maps.push(fig(`${headLabel(m.layer, m.head)}: ${m.why}`, await attentionMap(m)));
  const ev = a.waiver.evidence;
  const massive = await barChart(ev.layers.map((l) => ({
    label: `L${l.layer}`, value: l.maxActRatio,
    title: `layer ${l.layer}: max |activation| / median = ${fmt(l.maxActRatio, 1)}; ${fmt(l.massiveCount, 1)} entries above 100x ` +
      `(${fmt(l.massiveAtPos0, 1)} at position 0), channels [${l.massiveChannels.join(', ')}]`,
  })), { xTitle: 'layer', yTitle: 'max |act| / median', log: true, refLine: { value: 100, title: '100x: a massive activation' } });
  const residual = await groupedBarChart(ev.layers.flatMap((l) => [
    { group: `L${l.layer}`, series: 'position 0', value: l.residNormPos0, title: `layer ${l.layer}: residual norm at position 0 = ${fmt(l.residNormPos0, 2)}` },
    { group: `L${l.layer}`, series: 'median token', value: l.residMedianNorm, title: `layer ${l.layer}: median token residual norm = ${fmt(l.residMedianNorm, 2)}` },
  ]), { xTitle: 'layer', yTitle: 'residual norm', colors: colorsFor(['position 0', 'median token']) });
  const vnorm = await barChart(ev.heads.map((h) => ({
    label: headLabel(h.layer, h.head), value: h.valueNorm,
    title: `${headLabel(h.layer, h.head)}: ||v0|| / median = ${fmt(h.valueNorm, 2)}, ||k0|| / median = ${fmt(h.keyNorm, 2)}, sink contribution ${fmt(h.contribution)}`,
  })), { xTitle: 'head', yTitle: '||v0|| / median', refLine: { value: 1, title: '1: as large as a median token' } });
  const contrib = await barChart(ev.heads.map((h) => ({
    label: headLabel(h.layer, h.head), value: h.contribution, color: '#b279a2',
    title: `${headLabel(h.layer, h.head)}: sink contribution / head output = ${fmt(h.contribution)}`,
  })), { xTitle: 'head', yTitle: 'sink contribution / output' });
  const groups = [...a.groups].sort((x, y) => (y.groupScore.rrw[mid] ?? -1) - (x.groupScore.rrw[mid] ?? -1));
  const groupRows = groups.map((g) => `<tr><td>L${g.layer} G${g.kvGroup}</td><td>${g.heads.join(', ')}</td>${
    ks.map((k) => `<td>${fmt(g.groupScore.rr[k] ?? null)}</td>`).join('')}${ks.map((k) => `<td>${fmt(g.groupScore.rrw[k] ?? null)}</td>`).join('')}</tr>`).join('');
  const st = a.settings;
  // At-a-glance summary: the most local heads and groups, the sink level against a uniform head.
  const top = [...a.heads].sort((x, y) => (y.rrw[mid] ?? -1) - (x.rrw[mid] ?? -1)).slice(0, 6)
    .map((h) => `${headLabel(h.layer, h.head)} ${fmt(h.rrw[mid] ?? null)}`).join(', ');
  const local = a.heads.filter((h) => (h.rr[mid] ?? 0) >= 0.9).length;
  const sinkMean = a.heads.reduce((m, h) => m + (h.sink ?? 0), 0) / Math.max(1, a.heads.length);
  const summary = `<p>${local} of ${a.heads.length} heads have RR(${esc(mid)}) &ge; 0.9; most local by RRw(${esc(mid)}): ${top}.
Groups with score RRw(${esc(mid)}) &ge; 0.9: ${a.groups.filter((g) => (g.groupScore.rrw[mid] ?? 0) >= 0.9).length} of ${a.groups.length}.
Mean sink mass ${fmt(sinkMean)} (a uniform head: ${fmt(a.waiver.tests.uniformMass)}).</p>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>recurformer analysis: ${esc(a.model.source)}</title>
<style>${CSS}</style></head><body>
<h1>Attention-head analysis</h1>
<p>${esc(a.model.source)} &middot; ${esc(a.model.arch)}, ${L} layers &times; ${H} heads (${a.model.nKvHeads} KV groups), ${a.model.positions} positions.
${st.samples} samples &times; ${st.seq} tokens from ${esc(st.data)} (seed ${st.seed}).</p>
<p class="verdict">Waiver mechanism: ${esc(a.waiver.mechanism)} <span class="note">(votes lean ${esc(a.waiver.lean)})</span></p>
${summary}
<p class="note">RR(k): mean attention on the last k+1 keys (queries beyond k). RRw(k): RR(k) / (1 - sink). Hover a cell for its numbers.</p>
<h2>Recency (RR, RRw)</h2><div class="row">${heat.join('')}</div>
<h2>Attention sink</h2><div class="row">${sinks}</div>
<h2>RR distribution</h2><div class="row">${dist.join('')}</div>
<h2>KV groups by RRw(${esc(mid)}) (group score = minimum over its query heads)</h2>
<table><tr><th>group</th><th>heads</th>${ks.map((k) => `<th>RR(${k})</th>`).join('')}${ks.map((k) => `<th>RRw(${k})</th>`).join('')}</tr>${groupRows}</table>
${await retrievalSection(a)}
<h2>Attention maps (sample 0, first ${a.maps[0]?.size ?? 0} tokens)</h2><div class="row">${maps.join('')}</div>
<h2>Waiver evidence</h2><div class="row">
${fig('massive activations: max |act| / median per layer (log; red line 100x)', massive)}
${fig('residual norm: position 0 vs median token', residual)}
${fig('value norm of position 0 / median token, per head (red line 1)', vnorm)}
${fig('sink contribution / head output, per head', contrib)}</div>
<h2>Waiver tests</h2>${waiverTable(a)}
<p class="note">Thresholds: sink present when its mass &ge; ${a.waiver.tests.thresholds.SINK_FACTOR} &times; the uniform head's ${fmt(a.waiver.tests.uniformMass)}; kept &ge; ${a.waiver.tests.thresholds.KEEP}; lost &lt; ${a.waiver.tests.thresholds.LOSE}; new waiver: share &ge; ${a.waiver.tests.thresholds.NEW_WAIVER_SHARE} of the sink and gain &ge; ${a.waiver.tests.thresholds.NEW_WAIVER_GAIN}x. See docs/analysis.md.</p>
</body></html>
`;
}
