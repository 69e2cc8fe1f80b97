/** The CLI over the bundled model: generate, inspect, eval ppl, export; errors exit 1 with a message. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';

const GOLD = readFileSync(new URL('../fixtures/golden/stories260K-greedy.txt', import.meta.url), 'utf8');

test('generate --json with the default model reproduces the golden greedy sample', async () => {
  const r = await runCli(['generate', '--temperature', '0', '--max-tokens', '256', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { ids: number[]; text: string };
  assert.equal(out.text, GOLD);
  assert.equal(out.ids.length, 256);
});

test('generate streams text, honours a prompt, stop strings and seeds', async () => {
  const a = await runCli(['generate', '--prompt', 'Once upon a time', '--max-tokens', '30', '--seed', '7', '--json']);
  const b = await runCli(['generate', '--prompt', 'Once upon a time', '--max-tokens', '30', '--seed', '7', '--json']);
  assert.equal(a.stdout, b.stdout, 'same seed, same text');
  const s = await runCli(['generate', '--temperature', '0', '--max-tokens', '100', '--stop', 'park']);
  assert.equal(s.code, 0);
  assert.equal(s.stdout.trimEnd(), 'Once upon a time, there was a little girl named Lily. She loved to play outside in the');
});

test('inspect --json reports architecture, parameters, bytes and KV bytes per token', async () => {
  const r = await runCli(['inspect', '--json']);
  const info = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(info.arch, 'llama');
  assert.equal(info.params, 260032);
  assert.equal(info.weightBytes, 260032 * 4);
  assert.equal(info.kvBytesPerToken, 5 * 4 * 8 * 2 * 4);
});

test('eval ppl --json prints an EvalRecord scoring a file in windows', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-cli-'));
  try {
    const f = join(dir, 'story.txt');
    writeFileSync(f, `${GOLD}\n`);
    const r = await runCli(['eval', 'ppl', '--data', f, '--ctx', '64', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(r.stdout) as { schema: string; task: string; settings: { ctx: number; stride: number }; result: { nll: number; ppl: number; tokens: number } };
    assert.equal(rec.schema, 'recurformer.eval');
    assert.equal(rec.task, 'ppl');
    assert.deepEqual([rec.settings.ctx, rec.settings.stride], [64, 64]);
    const out = rec.result;
    assert.ok(out.tokens > 200);
    assert.ok(Math.abs(out.ppl - Math.exp(out.nll)) < 1e-9);
    assert.ok(out.ppl > 1 && out.ppl < 4, `the model's own greedy text is very likely to it (ppl ${out.ppl})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('export to GGUF and HF folders, then generate from them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-cli-'));
  try {
    const gguf = join(dir, 'm.gguf');
    assert.equal((await runCli(['export', '--format', 'gguf', '--dtype', 'F16', '--out', gguf])).code, 0);
    const g = await runCli(['generate', gguf, '--temperature', '0', '--max-tokens', '20', '--json']);
    assert.match((JSON.parse(g.stdout) as { text: string }).text, /^Once upon a time, there was a little girl named Lily/);
    const hf = join(dir, 'hf');
    assert.equal((await runCli(['export', '--out', hf, '--json'])).code, 0);
    const h = await runCli(['generate', hf, '--temperature', '0', '--max-tokens', '256', '--json']);
    assert.equal((JSON.parse(h.stdout) as { text: string }).text, GOLD);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input exits 1 with a message naming the problem and a hint', async () => {
  const missing = await runCli(['generate', '/nonexistent/model', '--max-tokens', '1']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /\/nonexistent\/model.*does not exist/);
  assert.match(missing.stderr, /hint/);
  const badT = await runCli(['generate', '--temperature', 'hot']);
  assert.equal(badT.code, 1);
  assert.match(badT.stderr, /--temperature = hot is not a number/);
  const badCtx = await runCli(['eval', 'ppl', '--data', 'README.md', '--ctx', '4096']);
  assert.equal(badCtx.code, 1);
  assert.match(badCtx.stderr, /ctx = 4096 exceeds the model context of 512/);
  const unknown = await runCli(['frobnicate']);
  assert.notEqual(unknown.code, 0);
  for (const d of ['q4', 'bf8', '']) {
    const badDtype = await runCli(['generate', '--dtype', d, '--max-tokens', '1']);
    assert.equal(badDtype.code, 1, `--dtype ${d}`);
    assert.match(badDtype.stderr, /--dtype = .* is not a weight type/);
  }
  const badChunk = await runCli(['generate', '--prefill-chunk', '0', '--max-tokens', '1']);
  assert.equal(badChunk.code, 1);
  assert.match(badChunk.stderr, /--prefill-chunk = 0 must be an integer >= 1/);
});

test('generate: --prefill-chunk 2 and --dtype KEEP (any case) give the greedy ids of the default run', async () => {
  const base = JSON.parse((await runCli(['generate', '--temperature', '0', '--max-tokens', '40', '--json', '--prompt', 'Once upon a time there was'])).stdout) as { ids: number[] };
  const chunked = JSON.parse((await runCli(['generate', '--temperature', '0', '--max-tokens', '40', '--json', '--prompt', 'Once upon a time there was', '--prefill-chunk', '2'])).stdout) as { ids: number[] };
  assert.deepEqual(chunked.ids, base.ids);
  const keep = JSON.parse((await runCli(['generate', '--temperature', '0', '--max-tokens', '40', '--json', '--prompt', 'Once upon a time there was', '--dtype', 'KEEP'])).stdout) as { ids: number[] };
  assert.deepEqual(keep.ids, base.ids, 'the bundled model is F32: keep is f32');
});

test('info --json names the backend and the instruction set of the quantized products', async () => {
  const r = await runCli(['info', '--json']);
  const info = JSON.parse(r.stdout) as { backend: string; simd: string; quantSimd: string };
  const { loadNative } = await import('../../src/tensor/native.js');
  const addon = loadNative().addon;
  if (info.backend === 'native') assert.equal(info.quantSimd, addon!.info().vnni ? 'vnni' : info.simd);
  else assert.equal(info.quantSimd, 'none');
});
