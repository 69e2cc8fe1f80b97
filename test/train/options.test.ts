/**
 * The training options' one schema (src/train/options.ts): its defaults are the config's, `--config` files and
 * `--set` overrides are checked by it (unknown keys, wrong types and out-of-range values are typed errors naming the
 * key, the file and a hint), and docs/training.md lists every option with its flag and default.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ArgumentError, FormatError } from '../../src/tensor/errors.js';
import { makeTrainConfig, TRAIN_DEFAULTS } from '../../src/train/config.js';
import {
  findOptionProblem, parseSetOverrides, readTrainOptionsFile, trainOption, trainOptionsSchema, TRAIN_OPTION_KEYS,
} from '../../src/train/options.js';
import { tmp } from './helpers.js';

/** The error `fn` throws (failing when it throws none). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  assert.fail('expected an error');
}

test('every option has a valid default (or none: data, out) and the config takes them all', () => {
  for (const k of TRAIN_OPTION_KEYS) {
    const s = trainOption(k);
    if (s.default === undefined) assert.ok(k === 'data' || k === 'out', `${k} has no default`);
    else assert.ok(s.schema.safeParse(s.default).success, `${k}'s default ${JSON.stringify(s.default)} passes its own schema`);
  }
  assert.deepEqual(Object.keys(TRAIN_DEFAULTS).sort(), TRAIN_OPTION_KEYS.filter((k) => k !== 'data' && k !== 'out').sort());
  const cfg = makeTrainConfig({ model: 'm', teacher: 't', data: 'd', out: 'o' });
  assert.deepEqual(cfg, { ...TRAIN_DEFAULTS, model: 'm', teacher: 't', data: 'd', out: 'o', cacheDir: 'o/cache' });
  assert.ok(trainOptionsSchema.safeParse(cfg).success, 'a made config passes the whole schema');
  // --init without a stage means pretraining (and then every weight trains)
  const pre = makeTrainConfig({ init: 'c.json', data: 'd', out: 'o' });
  assert.equal(pre.stage, 'pretrain');
  assert.equal(pre.trainable, 'all');
});

test('makeTrainConfig: unknown keys, wrong types and out-of-range values are ArgumentErrors naming the key', () => {
  const base = { model: 'm', teacher: 't', data: 'd', out: 'o' };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ lrr: 1e-3 }, /train config: lrr is not a training option\n {2}hint: did you mean lr\?/],
    [{ steps: 1.5 }, /steps = 1\.5 must be an integer >= 1/],
    [{ lr: '3e-4' }, /lr = 3e-4 must be a number >= 0/],
    [{ valFraction: 1 }, /valFraction = 1 must be a number in \(0, 1\)/],
    [{ temperature: 0 }, /temperature = 0 must be a number > 0/],
    [{ packing: 'doc' }, /packing = doc is not stream or document/],
    [{ trainable: 'norms' }, /trainable = norms is not recurrent, recurrent\+norms or all/],
    [{ lr: Infinity }, /lr = Infinity must be a number >= 0/],
  ];
  for (const [v, re] of cases) {
    const e = thrown(() => makeTrainConfig({ ...base, ...v }));
    assert.ok(e instanceof ArgumentError, `${JSON.stringify(v)}: ${e.message}`);
    assert.match(e.message, re);
    assert.equal((e as ArgumentError).arg, Object.keys(v)[0]);
  }
});

test('--set KEY=VALUE: values parsed by the option\'s type; a bad key or value is an ArgumentError naming --set KEY', () => {
  assert.deepEqual(parseSetOverrides(['lr=3e-4', 'steps=12', 'packing=document', 'min-lr=0.05', '--ce-weight=0.2', 'steps=13']),
    { lr: 3e-4, steps: 13, packing: 'document', minLrRatio: 0.05, ceWeight: 0.2 });
  assert.deepEqual(parseSetOverrides(['teacher=models/x=y']), { teacher: 'models/x=y' }, 'the value is all after the first =');
  const cases: [string, string, RegExp][] = [
    ['lrr=1', '--set lrr', /train: --set lrr is not a training option\n {2}hint: did you mean lr\? training options: model, teacher/],
    ['minLr=0.1', '--set minLr', /hint: did you mean minLrRatio\?/],
    ['steps=1.5', '--set steps', /--set steps = 1\.5 must be an integer >= 1/],
    ['steps=', '--set steps', /--set steps = {2}must be an integer >= 1/],
    ['lr=fast', '--set lr', /--set lr = fast must be a number >= 0/],
    ['valFraction=1', '--set valFraction', /--set valFraction = 1 must be a number in \(0, 1\)/],
    ['packing=doc', '--set packing', /--set packing = doc is not stream or document\n {2}hint: document starts/],
    ['lr', '--set', /--set lr is not KEY=VALUE/],
  ];
  for (const [s, arg, re] of cases) {
    const e = thrown(() => parseSetOverrides([s]));
    assert.ok(e instanceof ArgumentError, `${s}: ${e.message}`);
    assert.equal((e as ArgumentError).arg, arg);
    assert.match(e.message, re);
  }
});

test('--config FILE.json: options by key; unknown keys, wrong types and bad values are FormatErrors naming file and key', () => {
  const dir = tmp('options');
  const file = (name: string, body: string): string => {
    const p = join(dir, name);
    writeFileSync(p, body);
    return p;
  };
  const good = file('good.json', JSON.stringify({ description: 'a note', steps: 400, lr: 3e-4, packing: 'document', teacher: null }));
  assert.deepEqual(readTrainOptionsFile(good), { steps: 400, lr: 3e-4, packing: 'document', teacher: null });
  const cases: [string, string, RegExp][] = [
    ['unknown.json', '{"steps": 4, "lrr": 0.1}', /unknown\.json: option lrr is not a training option\n {2}hint: did you mean lr\?/],
    ['flagname.json', '{"min-lr": 0.1}', /flagname\.json: option min-lr is not a training option\n {2}hint: did you mean minLrRatio\?/],
    ['quoted.json', '{"lr": "3e-4"}', /quoted\.json: option lr = "3e-4" must be a number >= 0\n {2}hint: write numbers without quotes/],
    ['float.json', '{"steps": 2.5}', /float\.json: option steps = 2\.5 must be an integer >= 1/],
    ['range.json', '{"valFraction": 1.5}', /range\.json: option valFraction = 1\.5 must be a number in \(0, 1\)/],
    ['enum.json', '{"trainable": "everything"}', /enum\.json: option trainable = "everything" is not recurrent, recurrent\+norms or all/],
    ['bad.json', '{"steps": 4,}', /bad\.json: is not valid JSON/],
    ['array.json', '[{"steps": 4}]', /array\.json: holds an array, not an object of training options/],
    ['note.json', '{"description": 3}', /note\.json: description must be a string/],
  ];
  for (const [name, body, re] of cases) {
    const e = thrown(() => readTrainOptionsFile(file(name, body)));
    assert.ok(e instanceof FormatError, `${name}: ${e.message}`);
    assert.equal((e as FormatError).file, join(dir, name));
    assert.match(e.message, re);
  }
  const missing = thrown(() => readTrainOptionsFile(join(dir, 'nope.json')));
  assert.ok(missing instanceof ArgumentError);
  assert.match(missing.message, /--config .*nope\.json does not exist/);
  assert.equal(findOptionProblem({ steps: 4 }), null);
});

test('docs/training.md lists every option with its flag and default', () => {
  const doc = readFileSync(new URL('../../docs/training.md', import.meta.url), 'utf8');
  for (const k of TRAIN_OPTION_KEYS) {
    const s = trainOption(k);
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${k}\` |`));
    assert.ok(row, `docs/training.md has a row for ${k}`);
    const [, , flag, dflt] = row.split('|').map((c) => c.trim());
    assert.equal(flag, s.flag ? `\`--${s.flag}\`` : 'MODEL', `${k}'s flag`);
    const want = s.defaultHelp ?? (s.default === undefined ? 'required' : s.default === null ? '–' : `\`${JSON.stringify(s.default)}\``);
    assert.equal(dflt, want, `${k}'s default`);
  }
});
