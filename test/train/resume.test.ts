/**
 * Exact resume: 20 steps in one run equal 10 steps + checkpoint + resume for 10 (bit-identical weights and AdamW
 * moments), also when the process is killed with SIGKILL in the middle of writing the step-20 checkpoint (its stale
 * lock on the run folder is then taken over).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { readMetrics, runTraining } from '../../src/train/loop.js';
import { convertedModel, smallCorpus, TEACHER, tmp } from './helpers.js';

const model = convertedModel();
const data = smallCorpus(20_000);
const cache = tmp('cache');
const base = {
  stage: 'distill', model, teacher: TEACHER, data, cacheDir: cache, steps: 20, batch: 2, seq: 32, lr: 5e-3, warmup: 3,
  evalEvery: 10, evalBatches: 2, saveEvery: 10, temperature: 2, ceWeight: 0.5, klFocus: 1, accum: 2,
};

function assertSameState(a: string, b: string): void {
  const x = loadCheckpoint(a), y = loadCheckpoint(b);
  assert.equal(x.state.step, y.state.step);
  assert.equal(x.state.optimizerStep, y.state.optimizerStep);
  assert.deepEqual(x.state.data, y.state.data);
  for (const kind of ['weights', 'm', 'v'] as const) {
    assert.equal(x.tensors[kind].size, y.tensors[kind].size);
    for (const [n, arr] of x.tensors[kind]) {
      const other = y.tensors[kind].get(n)!;
      assert.ok(Buffer.from(arr.buffer).equals(Buffer.from(other.buffer)), `${kind} ${n} differs`);
    }
  }
}

let straight = '';

test('20 steps in one run equal 10 steps, a checkpoint and a resumed 10 (bit-identical)', async () => {
  straight = tmp('straight');
  const a = await runTraining({ ...base, out: straight });
  assert.equal(a.steps, 20);
  assert.ok(existsSync(join(straight, 'model', 'model.safetensors')), 'the trained model is written as an HF folder');
  const split = tmp('split');
  const b1 = await runTraining({ ...base, out: split }, { stopAfter: 10 });
  assert.equal(b1.steps, 10);
  assert.equal(loadCheckpoint(split).state.step, 10);
  const b2 = await runTraining(null, { resume: split });
  assert.equal(b2.resumedFrom, 10);
  assert.equal(b2.steps, 20);
  assertSameState(straight, split);
  // the metrics log reads as one run: the same train losses at every step
  const la = readMetrics(straight).filter((r) => r.type === 'train').map((r) => r.loss);
  const lb = readMetrics(split).filter((r) => r.type === 'train').map((r) => r.loss);
  assert.deepEqual(lb, la);
});

test('kill -9 while writing the step-20 checkpoint leaves step 10 loadable; resuming gives the same weights', async () => {
  assert.ok(straight, 'runs after the straight run');
  const out = tmp('killed');
  const args = ['train', model, '--teacher', TEACHER, '--data', data, '--cache', cache, '--stage', 'distill', '--steps', '20',
    '--batch', '2', '--seq', '32', '--lr', '5e-3', '--warmup', '3', '--eval-every', '10', '--eval-batches', '2',
    '--save-every', '10', '--temperature', '2', '--ce-weight', '0.5', '--kl-focus', '1', '--accum', '2', '--out', out];
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./cli-child.ts', import.meta.url).pathname], {
    env: { ...process.env, RF_ARGS: JSON.stringify(args), RECURFORMER_CKPT_PAUSE: '20:60000', RECURFORMER_QUIET: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const killed = await new Promise<boolean>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('checkpoint-write-paused')) {
        child.kill('SIGKILL');
      }
    });
    child.on('exit', (_code, signal) => resolve(signal === 'SIGKILL'));
  });
  assert.ok(killed, `the child was killed mid-write (stderr: ${stderr})`);
  assert.ok(readdirSync(out).some((f) => f.endsWith('.tmp')), 'the interrupted temp file is left behind');
  const ck = loadCheckpoint(out);
  assert.equal(ck.state.step, 10, 'the previous checkpoint survives intact');
  // the killed run's lock is stale: taken over with a warning naming its pid
  const warnings: string[] = [];
  const r = await runTraining(null, { resume: out, onWarn: (m) => warnings.push(m) });
  assert.match(warnings.join('\n'), new RegExp(`stale lock .* of pid ${child.pid}`));
  assert.equal(r.steps, 20);
  assert.ok(!readdirSync(out).some((f) => f.endsWith('.tmp')), 'the resumed run removes the stale temp file');
  assertSameState(straight, out);
});
