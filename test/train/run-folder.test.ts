/**
 * The run folder: a resumed copy writes into the copy (and resumes from any working directory), one training per
 * folder (a lock file), no silent overwrite of a finished run, and SIGINT / SIGTERM end a CLI run with a checkpoint
 * and exit code 130 / 143.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ArgumentError } from '../../src/tensor/errors.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { LOCK_FILE } from '../../src/train/lock.js';
import { readMetrics, runTraining } from '../../src/train/loop.js';
import { runCli } from '../helpers/cli.js';
import { convertedModel, settleReporter, smallCorpus, TEACHER, tmp } from './helpers.js';

const model = convertedModel();
const data = smallCorpus(20_000);
const cache = tmp('cache');
const base = { stage: 'distill', model, teacher: TEACHER, data, cacheDir: cache, steps: 4, batch: 2, seq: 16, evalEvery: 0, evalBatches: 1 };
const trainSteps = (dir: string): number => readMetrics(dir).filter((r) => r.type === 'train').length;

test('train refuses an --out that holds a run unless --force; --force starts over', async () => {
  const out = tmp('again');
  const args = ['train', model, '--teacher', TEACHER, '--data', data, '--cache', cache, '--steps', '2', '--batch', '2', '--seq', '16',
    '--eval-batches', '1', '--out', out, '--json'];
  await settleReporter();
  assert.equal((await runCli(args)).code, 0);
  const again = await runCli(args);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already holds a training run \(checkpoint\.bin\)/);
  assert.match(again.stderr, /hint: pass --force .* or --resume /);
  assert.equal(trainSteps(out), 2, 'the finished run is untouched');
  const forced = await runCli([...args, '--steps', '3', '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(trainSteps(out), 3, 'a fresh log');
  assert.equal(loadCheckpoint(out).state.step, 3);
});

test('a copied run resumes into the copy, from another working directory (relative paths at save)', async () => {
  const dir = tmp('rel');
  cpSync(data, join(dir, 'stories.txt'));
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    // relative data and out; no cacheDir: the default OUT/cache must move with a copy
    await runTraining({ ...base, cacheDir: undefined, data: 'stories.txt', out: 'orig' }, { stopAfter: 2 });
  } finally {
    process.chdir(cwd);
  }
  const orig = join(dir, 'orig');
  assert.equal(loadCheckpoint(orig).state.config.data, join(dir, 'stories.txt'), 'paths are stored absolute');
  const copy = join(tmp('copy'), 'run');
  cpSync(orig, copy, { recursive: true });
  const r = await runTraining(null, { resume: copy });
  assert.equal(r.steps, 4);
  assert.equal(r.config.out, copy);
  assert.equal(r.config.cacheDir, join(copy, 'cache'));
  assert.ok(existsSync(join(copy, 'model', 'config.json')));
  assert.equal(trainSteps(copy), 4, 'the copy\'s log continues the original\'s');
  assert.equal(loadCheckpoint(orig).state.step, 2, 'the original is untouched');
  assert.equal(trainSteps(orig), 2);
  assert.ok(!existsSync(join(orig, 'model')));
  // --out given with --resume wins; its log starts from the resumed run's
  const other = join(tmp('other'), 'run');
  const r2 = await runTraining({ out: other, steps: 6 }, { resume: copy });
  assert.equal(r2.steps, 6);
  assert.equal(loadCheckpoint(other).state.step, 6);
  assert.equal(trainSteps(other), 6);
  assert.equal(loadCheckpoint(copy).state.step, 4, 'the resumed folder is untouched');
});

test('a live lock on --out is a typed error naming the folder and pid; a stale one is taken over with a warning', async () => {
  const out = tmp('locked');
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    writeFileSync(join(out, LOCK_FILE), `${holder.pid}\n`);
    await assert.rejects(runTraining({ ...base, out }), (e: unknown) => {
      assert.ok(e instanceof ArgumentError);
      assert.ok(e.message.includes(out) && e.message.includes(`pid ${holder.pid}`), e.message);
      assert.ok(e.hint.length > 0);
      return true;
    });
    assert.ok(!existsSync(join(out, 'metrics.jsonl')), 'nothing was written');
  } finally {
    holder.kill('SIGKILL');
  }
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  writeFileSync(join(out, LOCK_FILE), `${dead}\n`);
  const warnings: string[] = [];
  const r = await runTraining({ ...base, out }, { onWarn: (m) => warnings.push(m) });
  assert.equal(r.steps, 4);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, new RegExp(`stale lock .* of pid ${dead}`));
  assert.ok(!existsSync(join(out, LOCK_FILE)), 'the lock is released at the end');
});

/** Starts a long CLI training in a child; resolves once it has logged `steps` train records. */
function startChild(out: string, steps: number): { child: ReturnType<typeof spawn>; output: () => string; started: Promise<void> } {
  const args = ['train', model, '--teacher', TEACHER, '--data', data, '--cache', cache, '--stage', 'distill', '--steps', '5000',
    '--batch', '2', '--seq', '16', '--eval-every', '0', '--eval-batches', '1', '--save-every', '0', '--out', out];
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./cli-child.ts', import.meta.url).pathname], {
    env: { ...process.env, RF_ARGS: JSON.stringify(args), RECURFORMER_QUIET: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const started = new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (trainSteps(out) >= steps) {
        clearInterval(poll);
        resolve();
      }
    }, 20);
    child.on('exit', () => {
      clearInterval(poll);
      reject(new Error(`the child exited early: ${text}`));
    });
  });
  return { child, output: () => text, started };
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test(`${signal} finishes the step, saves a checkpoint, says how to resume and exits ${code}`, async () => {
    const out = tmp(signal);
    const { child, output, started } = startChild(out, 2);
    const exited = new Promise<number | string | null>((resolve) => child.on('exit', (c, s) => resolve(c ?? s)));
    await started;
    if (signal === 'SIGINT') {
      // a second training on the running one's folder is refused, naming the running pid
      const second = await runCli(['train', model, '--teacher', TEACHER, '--data', data, '--cache', cache, '--steps', '1',
        '--batch', '2', '--seq', '16', '--eval-batches', '1', '--out', out]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, new RegExp(`is in use by another training \\(pid ${child.pid}\\)`));
    }
    child.kill(signal);
    assert.equal(await exited, code, output());
    const step = loadCheckpoint(out).state.step;
    assert.ok(step >= 2 && step < 5000, `stopped at step ${step}`);
    assert.equal(trainSteps(out), step, 'the checkpoint holds the last logged step');
    assert.match(output(), new RegExp(`${signal}: stopped at step ${step} of 5000, checkpoint saved to .*checkpoint\\.bin`));
    assert.ok(output().includes(`resume with: recurformer train --resume ${out}`), output());
    assert.ok(!readdirSync(out).some((f) => f === LOCK_FILE || f.endsWith('.tmp')), 'no lock or temp file left');
    const r = await runTraining({ steps: step + 2 }, { resume: out });
    assert.equal(r.resumedFrom, step);
    assert.equal(r.steps, step + 2);
  });
}
