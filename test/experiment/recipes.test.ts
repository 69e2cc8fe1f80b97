/**
 * The recipes under recipes/ validate (experiment recipes by recipeSchema, train --config files by the options'
 * schema); the pipeline's training defaults are the schema's, and the flags it writes for a stage reach `train` as the
 * options the stage asks for; a recipe with a bad key or value is a FormatError naming the file and the key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../src/tensor/errors.js';
import { makeTrainConfig, TRAIN_DEFAULTS } from '../../src/train/config.js';
import { readTrainOptionsFile } from '../../src/train/options.js';
import { narrowExperiment, pipelineStageDefaults, STAGE_KEYS, stageOptions, trainArgs, trainedKeys, type TrainSettings } from '../../scripts/experiment/pipeline.js';
import { loadRecipe, parseRecipe } from '../../scripts/experiment/recipe.js';
import { parseTrain } from '../train/parse-train.js';
import { tempDir } from '../io/tmp.js';

const RECIPES = 'recipes';
const files = readdirSync(RECIPES).filter((f) => f.endsWith('.json')).map((f) => join(RECIPES, f));

test('every recipes/*.json validates: experiment recipes by the recipe schema, the others as train --config files', () => {
  assert.ok(files.length >= 4, files.join(', '));
  const experiments = new Set<string>();
  for (const f of files) {
    const raw = JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;
    if ('name' in raw) {
      const x = loadRecipe(f, 'runs/x');
      experiments.add(f);
      assert.ok(x.trainData.startsWith('runs/x/') || !raw.trainData!.toString().includes('{out}'), `${f}: {out} is replaced`);
      for (const stage of [x.align, x.distill, ...(x.distillLong ? [x.distillLong] : [])]) {
        assert.ok(makeTrainConfig({ ...stageOptions(stage), model: 'm', teacher: 't', data: 'd', out: 'o' }), `${f}: a stage is a valid config`);
      }
    } else {
      readTrainOptionsFile(f);
    }
  }
  // the scripts' recipes are among them
  for (const f of ['recipes/demo.json', 'recipes/demo-stories260K.json', 'recipes/stories260K.json', 'recipes/demo-llama-hh.json', 'recipes/demo-llama.json']) assert.ok(experiments.has(f), f);
});

test('the recipes give the train flags the scripts wrote before they were data (steps.json keeps the recorded runs)', () => {
  const x = loadRecipe('recipes/demo-llama.json', 'runs/e2e');
  assert.deepEqual(trainArgs(x.align), ['--steps', '150', '--batch', '4', '--seq', '512', '--lr', '0.003', '--warmup', '10',
    '--eval-every', '150', '--eval-batches', '4', '--save-every', '0']);
  assert.deepEqual(trainArgs(x.distillLong!), ['--steps', '400', '--batch', '2', '--seq', '2048', '--lr', '0.0003', '--warmup', '20',
    '--trainable', 'all', '--packing', 'document', '--ce-weight', '0.2', '--eval-every', '400', '--eval-batches', '4', '--save-every', '0']);
  assert.deepEqual(x.distillLong!.seedsByBudget, { '0.25': [0], '0.75': [0] });
  assert.equal(x.distillLong!.data, join('runs/e2e', 'demo-corpus-mix'));
  const demo = loadRecipe('recipes/demo-stories260K.json', 'runs/demo');
  assert.deepEqual(trainArgs(demo.distill), ['--steps', '1200', '--batch', '8', '--seq', '128', '--lr', '0.0003', '--warmup', '50',
    '--eval-every', '1200', '--eval-batches', '4', '--save-every', '0']);
  assert.deepEqual(demo.tasks, ['ppl', 'passkey', 'needle', 'agree', 'cost']);
});

test('npm run demo trains (with --train) exactly what trained its shipped checkpoints: the stages of recipes/demo-llama-hh.json', () => {
  const demo = loadRecipe('recipes/demo.json', 'runs/x'), trial = loadRecipe('recipes/demo-llama-hh.json', 'runs/x');
  const training = (r: typeof demo): unknown => {
    const { name: _n, retrieval: _r, tasks: _t, trained: _s, budgets: _b, costLengths: _c, ...rest } = r;
    return rest;
  };
  assert.deepEqual(training(demo), training(trial));
  assert.ok(demo.budgets.every((b) => trial.budgets.includes(b)), 'the trial trains the demo\'s budgets');
  assert.deepEqual(Object.keys(demo.trained ?? {}).sort(), ['75', '75-rw', 'control']);
  // the demo's checkpoints are the trial's (whose F16 files and kinds the next test checks)
  for (const [key, dir] of Object.entries(demo.trained!)) assert.equal(dir, trial.trained?.[key], `trained.${key}`);
});

test('npm run experiment trains nothing on demo-llama-hh: its recipe names a shipped F16 checkpoint for every configuration', () => {
  const x = loadRecipe('recipes/demo-llama-hh.json', 'runs/x');
  assert.deepEqual(Object.keys(x.trained ?? {}).sort(), trainedKeys(x).sort());
  for (const [key, dir] of Object.entries(x.trained!)) {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { torch_dtype?: string; recurformer?: { kind?: string } };
    assert.equal(config.torch_dtype, 'float16', `${dir} ships as F16`);
    // the key says the kind: "-rw" recurrent+window, a bare budget recurrent, the control none
    const kind = key === 'control' ? 'none' : key.endsWith('-rw') ? 'recurrent+window' : 'recurrent';
    assert.equal(config.recurformer === undefined ? 'none' : config.recurformer.kind ?? 'recurrent', kind, `trained.${key} = ${dir}`);
  }
});

test('--budgets / --kinds narrow a recipe, its trained checkpoints with it; each kept value must be the recipe\'s', () => {
  const x = loadRecipe('recipes/demo-llama-hh.json', 'runs/x');
  assert.deepEqual(x.budgets, [0.25, 0.5, 0.75]);
  assert.deepEqual(Object.keys(x.trained ?? {}).sort(), ['25', '25-rw', '50', '50-rw', '75', '75-rw', 'control']);
  const y = narrowExperiment(x, 'r.json', [0.25]);
  assert.deepEqual([y.budgets, y.headKinds, Object.keys(y.trained!).sort()], [[0.25], ['recurrent', 'recurrent+window'], ['25', '25-rw', 'control']]);
  // a budget without shipped checkpoints (as 25% was before it was trained): only the control's is left, so the run
  // trains both kinds at 25% and not the control
  const { 25: _a, '25-rw': _b, ...older } = x.trained!;
  const w = narrowExperiment({ ...x, trained: older }, 'r.json', [0.25]);
  assert.deepEqual(Object.keys(w.trained!), ['control']);
  const z = narrowExperiment(x, 'r.json', [0.5, 0.75], ['recurrent+window']);
  assert.deepEqual([z.budgets, z.headKinds, Object.keys(z.trained!).sort()], [[0.5, 0.75], ['recurrent+window'], ['50-rw', '75-rw', 'control']]);
  assert.deepEqual(x.budgets, [0.25, 0.5, 0.75], 'the recipe itself is left as it was');
  assert.deepEqual(narrowExperiment(x, 'r.json').trained, x.trained, 'no filter keeps everything');
  assert.throws(() => narrowExperiment(x, 'r.json', [0.3]), /--budgets 0\.3: r\.json has no 0\.3 \(it has 0\.25, 0\.5, 0\.75\)/);
  assert.throws(() => narrowExperiment(x, 'r.json', undefined, ['streaming' as 'recurrent']), /--kinds streaming: r\.json has no streaming \(it has recurrent, recurrent\+window\)/);
});

test('a recipe\'s trained checkpoints are keyed by the stage folders it names', () => {
  const dir = tempDir('recipe-trained');
  const base = JSON.parse(readFileSync('recipes/demo.json', 'utf8')) as Record<string, unknown>;
  const f = join(dir, 'r.json');
  writeFileSync(f, JSON.stringify({ ...base, trained: { 'recurrent 75': 'x' } }));
  assert.throws(() => parseRecipe(readFileSync(f, 'utf8'), f), (e: unknown) => e instanceof FormatError && /trained has the key "recurrent 75": a key is "control", a budget in percent \("75"\) or one with -rw \("75-rw"\)/.test(e.message));
});

test('the pipeline\'s training defaults are the schema\'s, and its flags reach train as the stage\'s options', async () => {
  const own = pipelineStageDefaults({});
  const defaults = stageOptions({});
  for (const k of STAGE_KEYS) {
    if (k in own) continue;
    assert.equal(defaults[k], TRAIN_DEFAULTS[k], `a stage that does not set ${k} trains with the schema's default`);
  }
  assert.deepEqual(own, { evalEvery: TRAIN_DEFAULTS.steps, evalBatches: 4, saveEvery: 0 });
  const stages: TrainSettings[] = [{}, { steps: 7, lr: 1e-4 }, loadRecipe('recipes/demo-llama.json', 'o').distillLong!,
    { steps: 3, accum: 2, klFocus: 0.5, hiddenWeight: 1, evalEvery: 1, saveEvery: 2, valFraction: 0.2, textKey: 'body', minLrRatio: 0 }];
  for (const t of stages) {
    const values = await parseTrain(['m', '--teacher', 't', '--data', 'd', '--out', 'o', ...trainArgs(t)]);
    const cfg = makeTrainConfig(values) as unknown as Record<string, unknown>;
    const want = stageOptions(t) as Record<string, unknown>;
    for (const k of STAGE_KEYS) assert.equal(cfg[k], want[k], `${JSON.stringify(t)}: ${k}`);
  }
});

test('a recipe with a bad key or value is a FormatError naming the file and the key', () => {
  const good = JSON.parse(readFileSync('recipes/stories260K.json', 'utf8')) as Record<string, unknown>;
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ align: { steps: 200, lrr: 1 } }, /bad\.json: align\.lrr is not a training option\n {2}hint: did you mean lr\?/],
    [{ distill: { steps: '200' } }, /bad\.json: distill\.steps = "200" must be an integer >= 1/],
    [{ distill: { packing: 'doc' } }, /bad\.json: distill\.packing = "doc" is not stream or document/],
    [{ align: { seed: 3 } }, /bad\.json: align\.seed is not a recipe key here\n {2}hint: a stage sets training options other than model, teacher/],
    [{ budget: [0.5] }, /bad\.json: budget is not a recipe key here/],
    [{ budgets: [0.5, 1] }, /bad\.json: budgets\.1 = 1: /],
    [{ prepare: 'unzip' }, /bad\.json: prepare = "unzip": /],
    [{ analyzeSeq: undefined }, /bad\.json: analyzeSeq is missing/],
    [{ distillLong: { data: 'd', seedsByBudget: { '2': [0] } } }, /bad\.json: distillLong\.seedsByBudget has the key "2": a key is a budget in \(0, 1\)/],
    [{ retrieval: { ...(good['retrieval'] as object), alphabet: 'hex' } }, /bad\.json: retrieval\.alphabet = "hex": .*letters.*digits/],
  ];
  for (const [change, re] of cases) {
    const e = (() => {
      try {
        parseRecipe(JSON.stringify({ ...good, ...change }), 'bad.json');
      } catch (err) {
        return err as Error;
      }
      return assert.fail(`${JSON.stringify(change)} is refused`);
    })();
    assert.ok(e instanceof FormatError, e.message);
    assert.match(e.message, re);
  }
  // a stage's config file is checked as train --config checks it, and may not set what the pipeline sets
  const dir = tempDir('recipe');
  writeFileSync(join(dir, 'stage.json'), JSON.stringify({ steps: 5, seed: 2 }));
  writeFileSync(join(dir, 'r.json'), JSON.stringify({ ...good, align: { config: 'stage.json' } }));
  assert.throws(() => loadRecipe(join(dir, 'r.json'), 'o'), /stage\.json: option seed is set by the pipeline, not by a stage/);
  writeFileSync(join(dir, 'stage.json'), JSON.stringify({ steps: 5, lr: 'x' }));
  assert.throws(() => loadRecipe(join(dir, 'r.json'), 'o'), (e: Error) => e instanceof FormatError && /stage\.json: option lr = "x"/.test(e.message));
  writeFileSync(join(dir, 'stage.json'), JSON.stringify({ steps: 5, lr: 1e-3 }));
  writeFileSync(join(dir, 'r.json'), JSON.stringify({ ...good, align: { config: 'stage.json', steps: 6 } }));
  assert.deepEqual(loadRecipe(join(dir, 'r.json'), 'o').align, { steps: 6, lr: 1e-3 }, 'the stage\'s own keys override its file');
});
