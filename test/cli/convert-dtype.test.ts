/**
 * convert keeps the source's weight type by default (a BF16 checkpoint is written BF16, not widened to F32),
 * writes what --dtype asks, and never skips its output-scale calibration without a word.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fakeAnalysis, runCli } from '../helpers/cli.js';
import { tempDir } from '../io/tmp.js';

/** dtype -> count of the matrices (2-D, not recurrent) in a safetensors file, read from its header. */
function matrixDtypes(file: string): Record<string, number> {
  const buf = readFileSync(file);
  const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8')) as Record<string, { dtype: string; shape: number[] }>;
  const out: Record<string, number> = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || t.shape.length !== 2 || name.includes('.recurrent.')) continue;
    out[t.dtype] = (out[t.dtype] ?? 0) + 1;
  }
  return out;
}

test('convert writes BF16 from a BF16 source by default, F32 with --dtype F32; both load and generate', async () => {
  const dir = tempDir('convdtype');
  const src = join(dir, 'bf16');
  assert.equal((await runCli(['export', '--format', 'hf', '--dtype', 'BF16', '--out', src])).code, 0);
  assert.deepEqual(Object.keys(matrixDtypes(join(src, 'model.safetensors'))), ['BF16']);
  const a = join(dir, 'analysis.json');
  writeFileSync(a, JSON.stringify(fakeAnalysis()));
  const keep = await runCli(['convert', src, '--analysis', a, '--budget', '0.5', '--calib-tokens', '64', '--out', join(dir, 'keep'), '--json']);
  assert.equal(keep.code, 0, keep.stderr);
  const summary = JSON.parse(keep.stdout) as { dtype: string; calibrated: boolean };
  assert.equal(summary.dtype, 'BF16');
  assert.equal(summary.calibrated, true);
  assert.deepEqual(Object.keys(matrixDtypes(join(dir, 'keep', 'model.safetensors'))), ['BF16']);
  const f32 = await runCli(['convert', src, '--analysis', a, '--budget', '0.5', '--calib-tokens', '64', '--dtype', 'f32', '--out', join(dir, 'f32'), '--json']);
  assert.equal(f32.code, 0, f32.stderr);
  assert.deepEqual(Object.keys(matrixDtypes(join(dir, 'f32', 'model.safetensors'))), ['F32']);
  for (const m of ['keep', 'f32']) {
    const g = await runCli(['generate', join(dir, m), '--temperature', '0', '--max-tokens', '8', '--json']);
    assert.equal(g.code, 0, g.stderr);
  }
  const bad = await runCli(['convert', src, '--analysis', a, '--budget', '0.5', '--dtype', 'q4', '--out', join(dir, 'bad')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--dtype = q4 is not keep, F32, F16 or BF16/);
});

test('convert: a missing --calib file is an error before any work; random init reports calibrated false', async () => {
  const dir = tempDir('convcalib');
  const a = join(dir, 'analysis.json');
  writeFileSync(a, JSON.stringify(fakeAnalysis()));
  const missing = await runCli(['convert', '--analysis', a, '--budget', '0.5', '--calib', join(dir, 'nope.txt'), '--out', join(dir, 'x')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--calib .*nope\.txt does not exist/);
  const rnd = await runCli(['convert', '--analysis', a, '--budget', '0.5', '--init', 'random', '--out', join(dir, 'r'), '--json']);
  assert.equal(rnd.code, 0, rnd.stderr);
  assert.equal((JSON.parse(rnd.stdout) as { calibrated: boolean }).calibrated, false);
});
