/**
 * `recurformer train`'s flags are generated from the options' schema: every option is a flag whose help shows the
 * schema's default; precedence is defaults < --config < the flags given < --set; bad keys and values in either are
 * typed errors naming the key (and the file).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTrainConfig, TRAIN_DEFAULTS } from '../../src/train/config.js';
import { trainOption, TRAIN_OPTION_KEYS } from '../../src/train/options.js';
import { runCli } from '../helpers/cli.js';
import { tmp } from './helpers.js';
import { parseTrain } from './parse-train.js';

test('train --help: every option is a flag, with the schema\'s default shown by commander', async () => {
  const r = await runCli(['train', '--help']);
  assert.equal(r.code, 0);
  const help = r.stdout.replace(/\s+/g, ' ');
  for (const k of TRAIN_OPTION_KEYS) {
    const s = trainOption(k);
    if (s.flag === null) {
      assert.equal(k, 'model');
      assert.match(r.stdout, /Usage: recurformer train \[options\] \[model\]/);
      continue;
    }
    const at = help.indexOf(`--${s.flag} <${s.value}> `);
    assert.ok(at >= 0, `--${s.flag} is in the help`);
    const next = help.slice(at + 2).search(/ --[a-z-]+ <| --(force|json) | -h, --help/);
    const entry = help.slice(at, at + 2 + next);
    const shown = s.defaultHelp ?? (s.default === undefined || s.default === null ? undefined : JSON.stringify(s.default));
    if (shown === undefined) assert.doesNotMatch(entry, /\(default:/, `--${s.flag} has no default`);
    else assert.ok(entry.includes(`(default: ${shown})`), `--${s.flag} shows (default: ${shown}): ${entry}`);
  }
  assert.match(help, /--config <file> /);
  assert.match(help, /--set <key=value> /);
  assert.match(r.stdout, /\nExamples:\n(.*\n)* {2}\$ recurformer train .*--config \S+\.json --set lr=3e-4/);
});

test('precedence: defaults < --config < flags given < --set; the result is the expected config', async () => {
  const dir = tmp('precedence');
  const cfg = join(dir, 'recipe.json');
  writeFileSync(cfg, JSON.stringify({ description: 'test', steps: 400, lr: 1e-3, batch: 2, packing: 'document', ceWeight: 0.2, teacher: 'file-teacher' }));
  const argv = ['m', '--data', 'd', '--out', 'o', '--teacher', 't', '--config', cfg,
    '--lr', '5e-4', '--steps', '300', '--set', 'lr=3e-4', '--set', 'min-lr=0.05', '--set', 'seq=64', '--set', 'seq=96'];
  const values = await parseTrain(argv);
  assert.deepEqual(makeTrainConfig(values), {
    ...TRAIN_DEFAULTS, model: 'm', data: 'd', out: 'o', cacheDir: 'o/cache',
    teacher: 't', // flag over file
    steps: 300, // flag over file
    lr: 3e-4, // --set over flag over file
    batch: 2, packing: 'document', ceWeight: 0.2, // file over defaults
    minLrRatio: 0.05, seq: 96, // --set (the last one) over defaults
  });
  // a flag at its default value still counts as given: it overrides the file
  assert.equal((await parseTrain(['m', '--data', 'd', '--out', 'o', '--config', cfg, '--steps', '200'])).steps, 200);
  // defaults the help shows are not "given": the file's values stand, and absent options stay absent (a resumed
  // run keeps its saved config for them)
  assert.deepEqual(await parseTrain(['--resume', 'run', '--config', cfg]),
    { steps: 400, lr: 1e-3, batch: 2, packing: 'document', ceWeight: 0.2, teacher: 'file-teacher', out: 'run' });
  assert.deepEqual(await parseTrain(['--resume', 'run', '--set', 'steps=50']), { steps: 50, out: 'run' });
  assert.deepEqual(await parseTrain(['--resume', 'run', '--set', 'out=elsewhere']), { out: 'elsewhere' });
});

test('train: a bad key or value in --config, --set or a flag fails before training, naming the key', async () => {
  const dir = tmp('bad-options');
  const write = (name: string, body: unknown): string => {
    const p = join(dir, name);
    writeFileSync(p, JSON.stringify(body));
    return p;
  };
  const base = ['m', '--teacher', 't', '--data', 'd', '--out', join(dir, 'run')];
  const cases: [string[], RegExp][] = [
    [['--config', write('a.json', { stepz: 4 })], /recurformer: .*a\.json: option stepz is not a training option\n {2}hint: did you mean steps\?/],
    [['--config', write('b.json', { steps: '4' })], /recurformer: .*b\.json: option steps = "4" must be an integer >= 1\n {2}hint: write numbers without quotes/],
    [['--config', write('c.json', { valFraction: 0 })], /recurformer: .*c\.json: option valFraction = 0 must be a number in \(0, 1\)/],
    [['--set', 'stepz=4'], /recurformer: train: --set stepz is not a training option\n {2}hint: did you mean steps\?/],
    [['--set', 'steps=four'], /recurformer: train: --set steps = four must be an integer >= 1/],
    [['--set', 'warmup=-1'], /recurformer: train: --set warmup = -1 must be an integer >= 0/],
    [['--steps', '1.5'], /recurformer: train: --steps = 1\.5 must be an integer >= 1/],
    [['--packing', 'doc'], /recurformer: train: --packing = doc is not stream or document/],
    [['--config', join(dir, 'none.json')], /recurformer: train: --config .*none\.json does not exist/],
  ];
  for (const [extra, re] of cases) {
    const r = await runCli(['train', ...base, ...extra]);
    assert.equal(r.code, 1, extra.join(' '));
    assert.match(r.stderr, re);
  }
});
