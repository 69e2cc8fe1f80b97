/**
 * `recurformer export --format hf-torch` hands the folder to the python package (python/recurformer_torch/hf_export.py;
 * python/tests/test_hf.py checks what it writes): without a python that has torch it stops with how to get one, and
 * it refuses a --dtype (it copies the folder as it is) before running anything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../io/tmp.js';

async function withPython<T>(python: string, f: () => Promise<T>): Promise<T> {
  const saved = process.env.RECURFORMER_PYTHON;
  process.env.RECURFORMER_PYTHON = python;
  try {
    return await f();
  } finally {
    if (saved === undefined) delete process.env.RECURFORMER_PYTHON;
    else process.env.RECURFORMER_PYTHON = saved;
  }
}

test('export --format hf-torch without a usable python says how to install torch', async () => {
  const out = join(tempDir('hftorch'), 'o');
  const missing = await withPython('/nonexistent/python3', () => runCli(['export', '--format', 'hf-torch', '--out', out]));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /export: --format hf-torch cannot run \/nonexistent\/python3/);
  assert.match(missing.stderr, /pip install torch numpy/);
  const failing = await withPython('false', () => runCli(['export', '--format', 'hf-torch', '--out', out]));
  assert.equal(failing.code, 1);
  assert.match(failing.stderr, /false -m recurformer_torch\.hf_export failed/);
  assert.ok(!existsSync(join(out, 'modeling_recurformer.py')));
});

test('export --format hf-torch refuses a --dtype', async () => {
  const r = await runCli(['export', '--format', 'hf-torch', '--dtype', 'F16', '--out', join(tempDir('hftorch'), 'o')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--dtype F16: hf-torch copies the folder as it is/);
});
