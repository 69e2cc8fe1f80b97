/**
 * report.html for an analysis: one self-contained page (inline CSS and SVG; no scripts, fonts or network) that
 * shows a model's heads at a glance: layer x head heatmaps of RR, RRw and sink mass, the RR distribution, attention
 * maps of a few telling heads, massive activations and value norms, and the waiver test table.
 */
import type { Analysis } from '../analysis/schema.js';
import { attentionMap, barChart, esc, fmt, heatmap, histogram, type HeatCell } from './svg.js';

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
.row{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}.fig{margin:4px 0}
.fig h3{font-size:14px;margin:4px 0}.ax{font-size:10px;fill:#555;text-anchor:middle}
.v{font-size:9px;text-anchor:middle;pointer-events:none}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f3f3f3}.feature{background:#dbeafe}.positional{background:#fde2c8}.inconclusive{color:#777}
.verdict{font-size:16px;font-weight:600}.note{color:#666;font-size:12px}`;

function cells(a: Analysis, value: (h: Analysis['heads'][number]) => number | null, name: string): HeatCell[] {
  return a.heads.map((h) => ({
    layer: h.layer, head: h.head, value: value(h),
    title: `layer ${h.layer} head ${h.head} (KV group ${h.kvGroup}): ${name} = ${fmt(value(h))}; sink ${fmt(h.sink)}, ` +
      `entropy ${fmt(h.entropy, 2)} nats, mean distance ${fmt(h.meanDistance, 1)}`,
  }));
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
function retrievalSection(a: Analysis): string {
  const p = a.retrieval;
  if (!p) return '';
  const s = p.settings;
  const bars = barChart(p.groups.map((g) => ({
    label: `L${g.layer}g${g.kvGroup}`, value: Math.max(0, g.harm), color: '#2c7fb8',
    title: `layer ${g.layer} group ${g.kvGroup}: answer NLL ${fmt(g.nll, 3)} nats (+${fmt(g.harm, 3)}), accuracy ${fmt(g.accuracy, 2)}`,
  })));
  return `<h2>Retrieval probe (which groups long-range retrieval needs)</h2>
<p>${p.prompts} passkey prompts of ${s.length} tokens (key depths ${s.depths.join(', ')}, seed ${s.seed}); full attention: answer NLL
${fmt(p.baseline.nll, 3)} nats, accuracy ${fmt(p.baseline.accuracy, 2)}. Each bar: the NLL increase when that group alone keeps only
${s.sinks} sinks + ${s.window} recent keys. convert keeps the groups above its --protect-retrieval threshold as attention.</p>
<div class="row">${fig('answer NLL increase per KV group (nats)', bars)}</div>`;
}

export function renderReport(a: Analysis): string {
  const { nLayers: L, nHeads: H } = a.model;
  const ks = a.settings.windows.map(String);
  const mid = ks[Math.floor(ks.length / 2)]!;
  const heat = ks.map((k) => fig(`RR(${k})`, heatmap(`rr${k}`, cells(a, (h) => h.rr[k] ?? null, `RR(${k})`), L, H))).join('')
    + ks.map((k) => fig(`RRw(${k})`, heatmap(`rrw${k}`, cells(a, (h) => h.rrw[k] ?? null, `RRw(${k})`), L, H))).join('');
  const sinks = fig('sink mass (position 0)', heatmap('sink', cells(a, (h) => h.sink, 'sink mass'), L, H))
    + fig('mass on the first 4 positions', heatmap('sinkFirst4', cells(a, (h) => h.sinkFirst4, 'first-4 mass'), L, H));
  const dist = ks.map((k) => fig(`RR(${k}) over heads`, histogram(a.heads.map((h) => h.rr[k] ?? 0), 10, `RR(${k})`))).join('');
  const maps = a.maps.map((m) => fig(`L${m.layer} h${m.head}: ${m.why}`, attentionMap(m.probs, m.size, `layer ${m.layer} head ${m.head}`))).join('');
  const ev = a.waiver.evidence;
  const massive = barChart(ev.layers.map((l) => ({
    label: `L${l.layer}`, value: l.maxActRatio,
    title: `layer ${l.layer}: max |activation| / median = ${fmt(l.maxActRatio, 1)}; ${fmt(l.massiveCount, 1)} entries above 100x ` +
      `(${fmt(l.massiveAtPos0, 1)} at position 0), channels [${l.massiveChannels.join(', ')}]`,
  })), { log: true, refLine: 100, unit: 'x' });
  const residual = barChart(ev.layers.flatMap((l) => [
    { label: `L${l.layer} pos0`, value: l.residNormPos0, title: `layer ${l.layer}: residual norm at position 0 = ${fmt(l.residNormPos0, 2)}`, color: '#c0392b' },
    { label: `L${l.layer} med`, value: l.residMedianNorm, title: `layer ${l.layer}: median token residual norm = ${fmt(l.residMedianNorm, 2)}` },
  ]));
  const vnorm = barChart(ev.heads.map((h) => ({
    label: `${h.layer}.${h.head}`, value: h.valueNorm,
    title: `layer ${h.layer} head ${h.head}: ||v0|| / median = ${fmt(h.valueNorm, 2)}, ||k0|| / median = ${fmt(h.keyNorm, 2)}, sink contribution ${fmt(h.contribution)}`,
  })), { refLine: 1 });
  const contrib = barChart(ev.heads.map((h) => ({
    label: `${h.layer}.${h.head}`, value: h.contribution, color: '#7b3294',
    title: `layer ${h.layer} head ${h.head}: sink contribution / head output = ${fmt(h.contribution)}`,
  })));
  const groups = [...a.groups].sort((x, y) => (y.groupScore.rrw[mid] ?? -1) - (x.groupScore.rrw[mid] ?? -1));
  const groupRows = groups.map((g) => `<tr><td>L${g.layer} g${g.kvGroup}</td><td>${g.heads.join(', ')}</td>${
    ks.map((k) => `<td>${fmt(g.groupScore.rr[k] ?? null)}</td>`).join('')}${ks.map((k) => `<td>${fmt(g.groupScore.rrw[k] ?? null)}</td>`).join('')}</tr>`).join('');
  const st = a.settings;
  // At-a-glance summary: the most local heads and groups, the sink level against a uniform head.
  const top = [...a.heads].sort((x, y) => (y.rrw[mid] ?? -1) - (x.rrw[mid] ?? -1)).slice(0, 6)
    .map((h) => `L${h.layer}h${h.head} ${fmt(h.rrw[mid] ?? null)}`).join(', ');
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
<h2>Recency (RR, RRw)</h2><div class="row">${heat}</div>
<h2>Attention sink</h2><div class="row">${sinks}</div>
<h2>RR distribution</h2><div class="row">${dist}</div>
<h2>KV groups by RRw(${esc(mid)}) (group score = minimum over its query heads)</h2>
<table><tr><th>group</th><th>heads</th>${ks.map((k) => `<th>RR(${k})</th>`).join('')}${ks.map((k) => `<th>RRw(${k})</th>`).join('')}</tr>${groupRows}</table>
${retrievalSection(a)}
<h2>Attention maps (sample 0, first ${a.maps[0]?.size ?? 0} tokens)</h2><div class="row">${maps}</div>
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
