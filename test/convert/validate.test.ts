/** analysis.json and plan.json as inputs: field-by-field validation, and the check against the model's shape. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analysisProblem, parseAnalysis, parsePlan, planProblem } from '../../src/convert/validate.js';
import { FormatError } from '../../src/tensor/index.js';
import { fakeAnalysis } from '../helpers/cli.js';

const STORIES = { nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 8 };
const DEMO_LLAMA = { nLayers: 6, nHeads: 8, nKvHeads: 4, headDim: 32 };

function plan(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schema: 'recurformer.plan', version: 1, score: 'rr', window: 16, selection: { budget: 0.25 }, nLayers: 5, nKvGroups: 4,
    layers: [{ layer: 4, groups: [3, 1, 3] }], scores: [], ...extra,
  };
}

/** Asserts that parsing throws a FormatError naming the file and matching `re`. */
function rejects(parse: () => unknown, re: RegExp): void {
  assert.throws(parse, (e: unknown) => e instanceof FormatError && e.file === 'p.json' && re.test(e.message), String(re));
}

test('a plan is checked field by field, and the error names the field', () => {
  assert.deepEqual(parsePlan(plan(), 'p.json').layers, [{ layer: 4, groups: [1, 3] }], 'groups come back sorted, once each');
  const { window: _w, ...noWindow } = plan();
  rejects(() => parsePlan(noWindow, 'p.json'), /p\.json: window: .*expected number/);
  rejects(() => parsePlan(plan({ window: 0 }), 'p.json'), /window: /);
  rejects(() => parsePlan(plan({ layers: [{ layer: 1, groups: [0, -1] }] }), 'p.json'), /layers\[0\]\.groups\[1\]: /);
  rejects(() => parsePlan(plan({ layers: [{ layer: '1', groups: [0] }] }), 'p.json'), /layers\[0\]\.layer: /);
  rejects(() => parsePlan(plan({ schema: 'recurformer.analysis' }), 'p.json'), /schema: /);
  rejects(() => parsePlan(plan({ model: { nLayers: 5 } }), 'p.json'), /model\.nHeads: /);
  rejects(() => parsePlan([], 'p.json'), /the top level: /);
});

test('a plan must fit the model: its recorded shape, or for older plans nLayers / nKvGroups, and every index', () => {
  const p = parsePlan(plan({ model: STORIES }), 'p.json');
  assert.equal(planProblem(p, STORIES), null);
  assert.match(planProblem(p, DEMO_LLAMA)!, /was made for another model: nLayers 5 \(the model has 6\), headDim 8 \(the model has 32\)/);
  const old = parsePlan(plan(), 'p.json'); // no `model`: what it records is still checked
  assert.equal(planProblem(old, STORIES), null);
  assert.match(planProblem(old, DEMO_LLAMA)!, /nLayers 5 \(the model has 6\)/);
  assert.match(planProblem(parsePlan(plan({ layers: [{ layer: 5, groups: [0] }] }), 'p.json'), STORIES)!, /layers\[0\]\.layer = 5 is not a layer/);
});

test('an analysis is checked field by field and against the model; older files without `model` still are', () => {
  const old = parseAnalysis(fakeAnalysis(), 'a.json');
  assert.equal(analysisProblem(old, STORIES), null);
  assert.match(analysisProblem(old, DEMO_LLAMA)!, /it scores 5 layers x 4 KV groups, the model has 6 x 4/);
  const recorded = parseAnalysis({ ...(fakeAnalysis() as object), model: { ...STORIES, source: 'models/stories260K', arch: 'llama' } }, 'a.json');
  assert.match(analysisProblem(recorded, DEMO_LLAMA)!, /nLayers 5 \(the model has 6\), headDim 8 \(the model has 32\)/);
  assert.match(analysisProblem(recorded, { ...STORIES, nHeads: 16 })!, /nHeads 8 \(the model has 16\)/);
  assert.throws(() => parseAnalysis({ schema: 'recurformer.analysis' }, 'a.json'), (e: unknown) => e instanceof FormatError && /a\.json: groups: /.test(e.message));
  assert.throws(() => parseAnalysis({ groups: [{ layer: 0, kvGroup: 0, groupScore: { rr: { 16: 'high' }, rrw: {} } }] }, 'a.json'),
    /groups\[0\]\.groupScore\.rr\.16: /);
});
