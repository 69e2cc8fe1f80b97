/** convert -> inspect -> generate through the CLI, with a synthetic analysis.json; --memory streaming. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeAnalysis, runCli } from '../helpers/cli.js';

test('convert --budget 0.5, then inspect reports half the KV bytes and the recurrent heads; the result generates', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-convcli-'));
  try {
    const a = join(dir, 'analysis.json');
    writeFileSync(a, JSON.stringify(fakeAnalysis()));
    const out = join(dir, 'conv');
    const c = await runCli(['convert', '--analysis', a, '--budget', '0.5', '--calib-tokens', '128', '--out', out, '--json']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal((JSON.parse(c.stdout) as { replacedGroups: number }).replacedGroups, 10);
    const plan = JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')) as { schema: string };
    assert.equal(plan.schema, 'recurformer.plan');
    const i = JSON.parse((await runCli(['inspect', out, '--json'])).stdout) as Record<string, number>;
    assert.equal(i.kvBytesPerToken, 640);
    assert.equal(i.fullKvBytesPerToken, 1280);
    assert.equal(i.recurrentHeads, 20);
    assert.equal(i.attentionHeads, 20);
    // per layer with r replaced groups: 2r heads x P*N (8 x 8) + 3 conv steps x (2r*8 + r*8 + 2r*8) channels
    assert.equal(i.constantStateBytes, 4 * [2, 4, 4].reduce((s, r) => s + 2 * r * 64 + 3 * (40 * r), 0));
    const g = await runCli(['generate', out, '--temperature', '0', '--max-tokens', '20', '--json']);
    assert.equal(g.code, 0, g.stderr);
    assert.ok((JSON.parse(g.stdout) as { ids: number[] }).ids.length > 0);
    // an edited plan is accepted as is
    const again = await runCli(['convert', '--plan', join(out, 'plan.json'), '--out', join(dir, 'conv2'), '--json']);
    assert.equal(again.code, 0, again.stderr);
    // the same groups as the streaming-heads baseline on the original model
    const sh = await runCli(['generate', '--temperature', '0', '--max-tokens', '30', '--memory', 'streaming-heads', '--plan', join(out, 'plan.json'), '--window', '8', '--json']);
    assert.equal(sh.code, 0, sh.stderr);
    const noPlan = await runCli(['generate', '--memory', 'streaming-heads']);
    assert.match(noPlan.stderr, /--plan is required/);
    const bad = await runCli(['convert', '--analysis', a, '--out', join(dir, 'x')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /exactly one is required/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('convert --head-kind recurrent+window: inspect reports the kind and the window bytes, eval cost counts them, generate runs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-convrw-'));
  try {
    const a = join(dir, 'analysis.json');
    writeFileSync(a, JSON.stringify(fakeAnalysis()));
    const out = join(dir, 'conv');
    const c = await runCli(['convert', '--analysis', a, '--budget', '0.5', '--calib-tokens', '128', '--head-kind', 'recurrent+window',
      '--head-window', '16', '--head-sinks', '2', '--out', out, '--json']);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(JSON.parse(c.stdout) as unknown, { ...JSON.parse(c.stdout) as object, headKind: 'recurrent+window', headWindow: 16, headSinks: 2 });
    const i = JSON.parse((await runCli(['inspect', out, '--json'])).stdout) as Record<string, number | string>;
    assert.deepEqual([i.headKind, i.headWindow, i.headSinks, i.kvBytesPerToken], ['recurrent+window', 16, 2, 640]);
    // the plain recurrent state of the same groups, plus 2 + 16 - 1 tokens of keys and values per replaced group (10)
    assert.equal(i.constantStateBytes, 4 * [2, 4, 4].reduce((s, r) => s + 2 * r * 64 + 3 * (40 * r), 0) + 17 * 10 * 8 * 2 * 4);
    const text = (await runCli(['inspect', out])).stdout;
    assert.match(text, /20 recurrent\+window \(exact window 2 sinks \+ 16 recent tokens\)/);
    const cost = await runCli(['eval', 'cost', out, '--lengths', '8,64', '--json']);
    assert.equal(cost.code, 0, cost.stderr);
    const lengths = (JSON.parse(cost.stdout) as { result: { lengths: { length: number; bytes: number }[] } }).result.lengths;
    const state = 4 * [2, 4, 4].reduce((s, r) => s + 2 * r * 64 + 3 * (40 * r), 0), win = 10 * 8 * 2 * 4;
    assert.deepEqual(lengths.map((l) => l.bytes), [8 * 640 + 8 * win + state, 64 * 640 + 17 * win + state], 'windows fill, then stop growing');
    const g = await runCli(['generate', out, '--temperature', '0', '--max-tokens', '20', '--json']);
    assert.equal(g.code, 0, g.stderr);
    assert.ok((JSON.parse(g.stdout) as { ids: number[] }).ids.length > 0);
    for (const [args, re] of [
      [['--head-window', '16'], /--head-window belongs to --head-kind recurrent\+window/],
      [['--head-kind', 'sliding'], /--head-kind sliding is not one of recurrent, recurrent\+window/],
      [['--head-kind', 'recurrent+window', '--head-window', '0'], /--head-window/],
    ] as const) {
      const r = await runCli(['convert', '--analysis', a, '--budget', '0.5', ...args, '--out', join(dir, 'bad')]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, re);
      assert.ok(!existsSync(join(dir, 'bad')), 'nothing written');
    }
    // plan.json records the kind, so converting with it again gives the same kind and window
    assert.deepEqual((JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')) as { head: unknown }).head, { kind: 'recurrent+window', window: 16, sinks: 2 });
    const again = await runCli(['convert', '--plan', join(out, 'plan.json'), '--calib-tokens', '128', '--out', join(dir, 'again'), '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(readFileSync(join(dir, 'again', 'model.safetensors')), readFileSync(join(out, 'model.safetensors')), 'the same model');
    const other = JSON.parse((await runCli(['convert', '--plan', join(out, 'plan.json'), '--head-kind', 'recurrent', '--out', join(dir, 'rec'), '--json'])).stdout) as { headKind: string };
    assert.equal(other.headKind, 'recurrent', '--head-kind overrides the plan');
    // llama.cpp has no such heads: GGUF export says so, and writes nothing
    const gg = await runCli(['export', out, '--format', 'gguf', '--out', join(dir, 'rw.gguf')]);
    assert.equal(gg.code, 1);
    assert.match(gg.stderr, /is a converted model \(recurrent\+window heads\), which llama.cpp cannot run/);
    assert.ok(!existsSync(join(dir, 'rw.gguf')));
    // adding groups to it keeps its kind; another kind is refused
    const mixed = await runCli(['convert', out, '--analysis', a, '--budget', '0.75', '--head-kind', 'recurrent', '--out', join(dir, 'mixed')]);
    assert.equal(mixed.code, 1);
    assert.match(mixed.stderr, /differs from the model's earlier replaced groups/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generate --memory streaming uses the StreamingLLM baseline; unknown memory kinds are errors', async () => {
  const s = await runCli(['generate', '--temperature', '0', '--max-tokens', '40', '--memory', 'streaming', '--window', '1000', '--json']);
  const f = await runCli(['generate', '--temperature', '0', '--max-tokens', '40', '--json']);
  assert.equal(JSON.parse(s.stdout).text, JSON.parse(f.stdout).text, 'a window longer than the text changes nothing');
  const n = await runCli(['generate', '--temperature', '0', '--max-tokens', '60', '--memory', 'streaming', '--sinks', '1', '--window', '4', '--json']);
  assert.notEqual(JSON.parse(n.stdout).text, JSON.parse(f.stdout).text);
  const u = await runCli(['generate', '--memory', 'lossy']);
  assert.equal(u.code, 1);
  assert.match(u.stderr, /lossy is not a memory kind/);
});

test('convert and generate check analysis.json and plan.json against the model; the output folder is never clobbered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-convcheck-'));
  const DEMO = new URL('../../models/demo-llama', import.meta.url).pathname;
  const fails = async (args: string[], re: RegExp): Promise<void> => {
    const r = await runCli(args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, re);
  };
  const writePlan = (name: string, body: unknown): string => {
    writeFileSync(join(dir, name), JSON.stringify(body));
    return join(dir, name);
  };
  try {
    const a = join(dir, 'analysis.json');
    writeFileSync(a, JSON.stringify(fakeAnalysis())); // stories260K's 5 layers x 4 groups, no `model` (an older file)
    // stories260K's analysis on 6-layer demo-llama: refused before anything is written
    await fails(['convert', DEMO, '--analysis', a, '--budget', '0.5', '--out', join(dir, 'x')],
      /analysis\.json: was made for another model: it scores 5 layers x 4 KV groups, the model has 6 x 4/);
    assert.ok(!existsSync(join(dir, 'x')));
    const out = join(dir, 'conv');
    assert.equal((await runCli(['convert', '--analysis', a, '--budget', '0.25', '--calib-tokens', '64', '--out', out])).code, 0);
    const plan = JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(plan.model, { nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 8 }, 'the plan records the model\'s shape');
    // a plan naming layer 5 of a 5-layer model, one without a window, one made for demo-llama
    const layer5 = writePlan('layer5.json', { ...plan, layers: [{ layer: 5, groups: [0] }] });
    const { window: _w, ...rest } = plan;
    const noWindow = writePlan('nowindow.json', rest);
    const demo = writePlan('demo.json', { ...plan, model: { nLayers: 6, nHeads: 8, nKvHeads: 4, headDim: 32 }, nLayers: 6 });
    await fails(['convert', '--plan', layer5, '--out', join(dir, 'x')], /layer5\.json: layers\[0\]\.layer = 5 is not a layer of this model \(0\.\.4\)/);
    await fails(['convert', '--plan', noWindow, '--out', join(dir, 'x')], /nowindow\.json: window: /);
    await fails(['convert', '--plan', demo, '--out', join(dir, 'x')], /demo\.json: was made for another model: nLayers 6 \(the model has 5\)/);
    assert.ok(!existsSync(join(dir, 'x')));
    const gen = ['generate', '--max-tokens', '2', '--memory', 'streaming-heads', '--plan'];
    await fails([...gen, layer5], /layer5\.json: layers\[0\]\.layer = 5 is not a layer/);
    await fails([...gen, noWindow], /nowindow\.json: window: /);
    await fails([...gen, demo], /demo\.json: was made for another model: nLayers 6 \(the model has 5\), headDim 32 \(the model has 8\)/);
    // the output folder already holds a model: refused without --force, replaced with it
    await fails(['convert', '--analysis', a, '--budget', '0.5', '--out', out], /--out .*conv already holds a model\n {2}hint: pass --force/);
    assert.equal(JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')).selection.budget, 0.25, 'untouched');
    const forced = await runCli(['convert', '--analysis', a, '--budget', '0.5', '--calib-tokens', '64', '--out', out, '--force', '--json']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')).selection.budget, 0.5);
    // converting the converted model keeps its groups and adds the plan's; analyzing it is refused clearly
    const more = writePlan('more.json', { ...plan, layers: [{ layer: 0, groups: [1] }] });
    const again = await runCli(['convert', out, '--plan', more, '--out', join(dir, 'conv2'), '--json']);
    assert.equal(again.code, 0, again.stderr);
    const s = JSON.parse(again.stdout) as { replacedGroups: number; earlier: unknown[]; layers: { layer: number }[] };
    assert.equal(s.replacedGroups, 11);
    assert.deepEqual(s.layers.map((l) => l.layer), [0, 2, 3, 4]);
    assert.equal(s.earlier.length, 3);
    const i = JSON.parse((await runCli(['inspect', join(dir, 'conv2'), '--json'])).stdout) as Record<string, number>;
    assert.equal(i.recurrentHeads, 22);
    await fails(['analyze', out, '--data', join(dir, 'analysis.json'), '--seq', '32', '--windows', '4', '--samples', '1', '--out', join(dir, 'an')],
      /analyze: model is a converted model \(10 KV groups are already recurrent\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
