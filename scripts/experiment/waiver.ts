/**
 * The waiver (attention sink) section of docs/results.md for a model's analysis.json: the overall verdict, and per
 * layer the sink mass on the first token against a uniform head's, the vote counts and the key test numbers.
 */
import { readFileSync } from 'node:fs';

interface LayerVerdict { layer: number; verdict: string; lean: string; feature: number; positional: number }
interface TestLayer { layer: number; vote: string; values: Record<string, number> }
interface Analysis {
  waiver: {
    mechanism: string;
    lean: string;
    perLayer: LayerVerdict[];
    evidence: { layers: { layer: number; maxActRatio: number; massiveCount: number; residNormPos0: number; residMedianNorm: number }[] };
    tests: { uniformMass: number; baseline: { layer: number; sinkMass: number }[]; tests: { test: string; perLayer: TestLayer[] }[] };
  };
}

const f = (v: number | undefined, d = 3): string => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));

export function waiverSection(name: string, analysisFile: string): string {
  const a = (JSON.parse(readFileSync(analysisFile, 'utf8')) as Analysis).waiver;
  const test = (t: string, layer: number): TestLayer | undefined => a.tests.tests.find((x) => x.test === t)?.perLayer.find((p) => p.layer === layer);
  const rows = a.perLayer.map((l) => {
    const base = a.tests.baseline.find((b) => b.layer === l.layer);
    const ev = a.evidence.layers.find((e) => e.layer === l.layer);
    const shift = test('shift', l.layer), prepend = test('prepend', l.layer), mask = test('mask', l.layer), drop = test('bos-drop', l.layer);
    return `| ${l.layer} | ${f(base?.sinkMass)} (${f((base?.sinkMass ?? NaN) / a.tests.uniformMass, 1)}x) | ${f(ev ? ev.residNormPos0 / ev.residMedianNorm : NaN, 1)} | ` +
      `${f(ev?.maxActRatio, 1)} | ${shift ? `${f(shift.values['retention'])} ${shift.vote}` : '–'} | ` +
      `${prepend ? `${f(prepend.values['follow'])} / ${f(prepend.values['stay'])} ${prepend.vote}` : '–'} | ` +
      `${mask ? `${f(mask.values['share'])} ${mask.vote}` : '–'} | ${drop ? `${f(drop.values['retention'])} ${drop.vote}` : '–'} | ` +
      `${l.verdict}${l.verdict === 'no-sink' ? ` (lean ${l.lean})` : ''} |`;
  });
  return [
    `**${name}: mechanism \`${a.mechanism}\`, lean \`${a.lean}\`.** Uniform-head mass on position 0 at this length: ${f(a.tests.uniformMass, 4)}.`,
    '',
    '| layer | sink mass on pos 0 (x uniform) | resid norm pos 0 / median | max activation / median | shift: retention | prepend: follow / stay | mask: new-waiver share | BOS drop: retention | verdict |',
    '|---:|---:|---:|---:|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}
