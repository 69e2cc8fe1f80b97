// The experiment pipeline behind `npm run demo` and `npm run experiment`, end to end at toy sizes on the bundled
// stories260K: analyze, convert, align, distill, every eval task on the original, the converted models and both
// baselines at equal cache; then the summary table and the report page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluate, prepare, report, type ModelExperiment } from '../../scripts/experiment/pipeline.js';
import { CONTROL_LABEL, summarize } from '../../src/eval/summary.js';
import type { CostResult } from '../../src/eval/cost.js';
import { tempDir } from '../io/tmp.js';

test('experiment pipeline: every configuration gets every task; baselines hold no more cache than the converted model', async () => {
  const out = tempDir('pipeline');
  const text = readFileSync('data/tinystories-valid-excerpt/tinystories_val.txt', 'utf8');
  const train = join(out, 'train.txt'), held = join(out, 'held.txt');
  writeFileSync(train, text.slice(0, 60_000));
  writeFileSync(held, text.slice(-6_000));
  const x: ModelExperiment = {
    name: 'tiny', model: 'models/stories260K', trainData: train, calib: train, analyzeSeq: 128, analyzeSamples: 2,
    heldout: held, pplCtx: 128, pplStride: 64, budgets: [0.5], never: [4],
    align: { steps: 2, batch: 2, seq: 32, lr: 3e-3, warmup: 1 },
    distill: { steps: 2, batch: 2, seq: 32, lr: 3e-4, warmup: 1 },
    distillLong: { steps: 2, batch: 2, seq: 64, lr: 3e-4, warmup: 1, trainable: 'all', packing: 'document', ceWeight: 0.5, data: held, seeds: [0],
      seedsByBudget: { 0.5: [0, 5] } },
    retrieval: { lengths: [256], depths: [0.5], hops: [1], samples: 1, alphabet: 'digits' },
    decodeAt: 256, seed: 0,
  };
  const quiet = (): void => {};
  const configs = await prepare(x, { out, log: quiet });
  assert.deepEqual(configs.map((c) => c.label),
    ['original', 'converted 50% (untrained)', 'RecurFormer 50%', 'StreamingLLM @50%', 'streaming heads @50%']);
  assert.ok(existsSync(join(out, 'tiny', 'distill50', 'model', 'config.json')));
  // the plan never touches the layer it is told to keep
  const plan = JSON.parse(readFileSync(join(out, 'tiny', 'conv50', 'plan.json'), 'utf8')) as { layers: { layer: number }[] };
  assert.ok(plan.layers.length > 0 && plan.layers.every((l) => l.layer !== 4), JSON.stringify(plan.layers));
  // the second distillation stage continues the first, a stage per further seed continues it (its own data order;
  // this budget's seeds override the default ones), and the last one's model is the one evaluated
  const long = join(out, 'tiny', 'distill-long50'), longer = join(out, 'tiny', 'distill-long50-s5');
  assert.equal(configs[2]!.model, join(longer, 'model'));
  const weights = (d: string): Buffer => readFileSync(join(d, 'model', 'model.safetensors'));
  assert.notDeepEqual(weights(long), weights(join(out, 'tiny', 'distill50')));
  assert.notDeepEqual(weights(longer), weights(long));
  const recorded = JSON.parse(readFileSync(join(out, 'steps.json'), 'utf8')) as Record<string, { command: string[] }>;
  const cmd = (d: string): string[] => recorded[join(d, 'model', 'config.json')]!.command;
  assert.equal(cmd(longer)[1], join(long, 'model'));
  assert.equal(cmd(longer)[cmd(longer).indexOf('--seed') + 1], '5');
  assert.equal(cmd(long)[cmd(long).indexOf('--seed') + 1], '0');
  // its settings reach train: the data cross-entropy is part of its loss
  const steps = readFileSync(join(long, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; parts?: { ce?: number } });
  assert.ok(steps.filter((r) => r.type === 'train').every((r) => Number.isFinite(r.parts?.ce)), 'the second stage logs a CE part');
  const { records, files } = await evaluate(x, configs, { out, log: quiet });
  // original: 5 tasks (no agreement with itself); untrained conversion: ppl + agree; the other three: all 6
  assert.equal(records.length, 5 + 2 + 3 * 6);
  assert.equal(files.length, records.length);
  // the recipe's hash alphabet reaches every hashhop run
  const hashhop = records.filter((r) => r.task === 'hashhop');
  assert.equal(hashhop.length, 4);
  for (const r of hashhop) assert.equal(r.settings['alphabet'], 'digits', r.label);
  const cost = (label: string): CostResult => records.find((r) => r.label === label && r.task === 'cost')!.result as CostResult;
  const hybrid = cost('RecurFormer 50%');
  assert.equal(hybrid.kvBytesPerToken * 2, cost('original').kvBytesPerToken, 'budget 0.5 halves the KV bytes per token');
  for (const base of ['StreamingLLM @50%', 'streaming heads @50%']) {
    for (const [i, l] of cost(base).lengths.entries()) {
      assert.ok(l.bytes <= hybrid.lengths[i]!.bytes, `${base} holds ${l.bytes} <= ${hybrid.lengths[i]!.bytes} bytes at ${l.length}`);
    }
  }
  const s = summarize(records);
  assert.equal(s.rows.length, 5);
  assert.ok(s.rows.every((r) => r.ppl !== null && Number.isFinite(r.ppl)), 'every configuration has a perplexity');
  // a second run finds every output and redoes nothing
  const again = await evaluate(x, configs, { out, log: quiet });
  assert.deepEqual(again.records, records);
  const page = join(out, 'report.html');
  await report(files, 'toy', page, quiet);
  const html = readFileSync(page, 'utf8');
  for (const c of configs) assert.ok(html.includes(c.label), `report names ${c.label}`);

  // a changed setting reruns its step and, through their inputs, the steps after it; nothing else
  assert.ok(cmd(long).includes('--ce-weight'), 'steps.json records the commands');
  const mtime = (f: string): number => statSync(f).mtimeMs;
  const fileOf = (task: string, label: string): string => files.find((f) => f.endsWith(`${task}-${label}.json`))!;
  const watched = [join(out, 'tiny', 'distill50', 'model', 'model.safetensors'), join(longer, 'model', 'model.safetensors'),
    fileOf('ppl', 'original'), fileOf('ppl', 'recurformer-50'), fileOf('ppl', 'streamingllm-50')];
  const before = watched.map(mtime);
  const lines: string[] = [];
  const x2: ModelExperiment = { ...x, distillLong: { ...x.distillLong!, steps: 3 } };
  const configs2 = await prepare(x2, { out, log: (l) => lines.push(l) });
  await evaluate(x2, configs2, { out, log: (l) => lines.push(l) });
  const after = watched.map(mtime);
  assert.equal(after[0], before[0], 'the first distillation stage is kept');
  assert.notEqual(after[1], before[1], 'the second stage ran again with 3 steps');
  const trainSteps = readFileSync(join(longer, 'metrics.jsonl'), 'utf8').trim().split('\n').filter((l) => (JSON.parse(l) as { type: string }).type === 'train');
  assert.equal(trainSteps.length, 3);
  assert.equal(after[2], before[2], "the original's evals are kept");
  assert.notEqual(after[3], before[3], "the retrained model's evals ran again");
  assert.equal(after[4], before[4], 'the StreamingLLM evals (original model, untrained conversion) are kept');
  assert.ok(lines.some((l) => l.includes('its command changed: running again')), lines.join('\n'));

  // an interrupted training stage (its checkpoint written, its model not) continues from its checkpoint to the same
  // weights; one whose recorded start no longer matches its command starts afresh
  const first = join(out, 'tiny', 'distill50');
  const w = weights(first);
  rmSync(join(first, 'model'), { recursive: true });
  const resumed: string[] = [];
  await prepare(x2, { out, log: (l) => resumed.push(l) });
  assert.ok(resumed.includes(`- ${first} was interrupted: resuming it from its checkpoint`), resumed.join('\n'));
  assert.ok(resumed.includes(`$ recurformer train --resume ${first}`), resumed.join('\n'));
  assert.deepEqual(weights(first), w);
  const started = JSON.parse(readFileSync(join(out, 'started.json'), 'utf8')) as Record<string, { command: string[] }>;
  started[first]!.command = [...started[first]!.command, '--grad-clip', '0.5'];
  writeFileSync(join(out, 'started.json'), JSON.stringify(started));
  rmSync(join(first, 'model'), { recursive: true });
  const afresh: string[] = [];
  await prepare(x2, { out, log: (l) => afresh.push(l) });
  assert.ok(!afresh.some((l) => l.includes('resum')), afresh.join('\n'));
  assert.ok(afresh.some((l) => l.startsWith(`$ recurformer train ${join(out, 'tiny', 'align50', 'model')}`) && l.endsWith(`--out ${first}`)), afresh.join('\n'));
  assert.ok(existsSync(join(first, 'model', 'config.json')));
});

test('experiment pipeline: both kinds of replaced group under one plan, the control, baselines sized to the larger cache', async () => {
  const out = tempDir('pipeline-kinds');
  const text = readFileSync('data/tinystories-valid-excerpt/tinystories_val.txt', 'utf8');
  const train = join(out, 'train.txt'), held = join(out, 'held.txt');
  writeFileSync(train, text.slice(0, 40_000));
  writeFileSync(held, text.slice(-4_000));
  const stage = { steps: 2, batch: 2, seq: 32, lr: 3e-4, warmup: 1 };
  const x: ModelExperiment = {
    name: 'kinds', model: 'models/stories260K', trainData: train, calib: train, analyzeSeq: 128, analyzeSamples: 2,
    heldout: held, pplCtx: 128, pplStride: 128, budgets: [0.5], headKinds: ['recurrent', 'recurrent+window'], headWindow: 16, headSinks: 2,
    control: true, align: { ...stage, lr: 3e-3 }, distill: { ...stage, trainable: 'all', ceWeight: 0.5 },
    retrieval: { lengths: [256], depths: [0.5], hops: [1], samples: 1 }, tasks: ['ppl', 'cost'], decodeAt: 256, costLengths: [64, 256], seed: 0,
  };
  const configs = await prepare(x, { out, log: () => {} });
  assert.deepEqual(configs.map((c) => c.label), ['original', CONTROL_LABEL, 'converted 50% (untrained)', 'RecurFormer 50%',
    'converted 50% recurrent+window (untrained)', 'recurrent+window 50%', 'StreamingLLM @50%', 'streaming heads @50%']);
  const spec = (d: string): { kind?: string; window?: number; sinks?: number; layers: unknown } =>
    (JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as { recurformer: { kind?: string; window?: number; sinks?: number; layers: unknown } }).recurformer;
  const rw = spec(configs[4]!.model), rec = spec(configs[2]!.model);
  assert.deepEqual([rw.kind, rw.window, rw.sinks], ['recurrent+window', 16, 2]);
  assert.equal(rec.kind, undefined);
  assert.deepEqual(rw.layers, rec.layers, 'one plan for both kinds');
  // the control is the original trained by the same stage: its weights moved, and its teacher was the original
  assert.notDeepEqual(readFileSync(join(configs[1]!.model, 'model.safetensors')), readFileSync('models/stories260K/model.safetensors'));
  assert.equal(configs[6]!.equalCache, configs[4]!.model, 'the baselines hold what the recurrent+window model holds');
  const { records } = await evaluate(x, configs, { out, log: () => {} });
  const cost = (label: string): CostResult => records.find((r) => r.label === label && r.task === 'cost')!.result as CostResult;
  assert.equal(records.filter((r) => r.label === CONTROL_LABEL).map((r) => r.task).join(), 'ppl', 'the control is scored, its cost is the original\'s');
  assert.ok(cost('recurrent+window 50%').lengths.every((l, i) => l.bytes > cost('RecurFormer 50%').lengths[i]!.bytes), 'a window costs bytes');
  for (const base of ['StreamingLLM @50%', 'streaming heads @50%']) {
    for (const [i, l] of cost(base).lengths.entries()) assert.ok(l.bytes <= cost('recurrent+window 50%').lengths[i]!.bytes, `${base} at ${l.length}`);
  }
  const s = summarize(records);
  assert.ok(s.rows.filter((r) => r.label !== 'original').every((r) => r.pplVsControl !== null && Number.isFinite(r.pplVsControl)));
  assert.deepEqual(cost('original').lengths.map((l) => l.length), [64, 256], 'the recipe\'s cost lengths');
  assert.equal(s.cacheAt, 256, 'the cache column is read at the last of them');

  // trained checkpoints named by the experiment are evaluated instead of training (npm run demo's shipped models)
  const shipped = join(out, 'shipped');
  for (const [key, i] of [['control', 1], ['50', 3], ['50-rw', 5]] as const) cpSync(configs[i]!.model, join(shipped, key), { recursive: true });
  const trained = { control: join(shipped, 'control'), 50: join(shipped, '50'), '50-rw': join(shipped, '50-rw') };
  const out2 = tempDir('pipeline-trained'), lines: string[] = [];
  const configs2 = await prepare({ ...x, trained }, { out: out2, log: (l) => lines.push(l) });
  assert.deepEqual(configs2.map((c) => c.label), configs.map((c) => c.label));
  assert.deepEqual([configs2[1]!.model, configs2[3]!.model, configs2[5]!.model], [trained.control, trained[50], trained['50-rw']]);
  assert.ok(!existsSync(join(out2, 'kinds', 'align50')) && !existsSync(join(out2, 'kinds', 'distill50-control')), 'nothing trained');
  assert.equal(lines.filter((l) => l.includes('not trained again')).length, 3, lines.join('\n'));
  const again = await evaluate({ ...x, trained }, configs2, { out: out2, log: () => {} });
  const ppl = (rs: typeof records, label: string): unknown => rs.find((r) => r.label === label && r.task === 'ppl')!.result;
  for (const label of [CONTROL_LABEL, 'RecurFormer 50%', 'recurrent+window 50%']) assert.deepEqual(ppl(again.records, label), ppl(records, label), label);
  // a checkpoint of another plan or kind, a missing one, a key that names nothing: typed errors with the way out
  const fails = async (t: Record<string, string>, re: RegExp): Promise<void> => {
    await assert.rejects(prepare({ ...x, trained: t }, { out: out2, log: () => {} }), re);
  };
  await fails({ 50: trained['50-rw'] }, /trained\.50\) was not converted under this run's plan.*--train/);
  await fails({ control: trained[50] }, /trained\.control\) was not converted under this run's plan.*the control is the original/);
  await fails({ 50: join(shipped, 'nope') }, /nope \(trained\.50\) has no config\.json; train it instead with --train/);
  await fails({ 75: trained[50] }, /trained\.75 names no configuration this run trains \(its keys: control, 50, 50-rw\)/);
});
