/**
 * eval ppl / agree / cost / report through the CLI: EvalRecords on stdout and in --out files, --equal-cache sizing
 * against a converted stories260K (made here as convert-cli.test.ts does), hand-computed cache bytes, the report
 * page, and typed errors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EvalRecord } from '../../src/eval/record.js';
import type { CostResult } from '../../src/eval/cost.js';
import type { AgreeResult } from '../../src/eval/agree.js';
import type { PplResult } from '../../src/eval/perplexity.js';
import { fakeAnalysis, runCli } from '../helpers/cli.js';

let dir = '', conv = '', data = '';

async function record<R>(args: string[]): Promise<EvalRecord<R>> {
  const r = await runCli([...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as EvalRecord<R>;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rf-evalcli-'));
  writeFileSync(join(dir, 'analysis.json'), JSON.stringify(fakeAnalysis()));
  conv = join(dir, 'conv');
  // budget 0.5 of the 20 groups: layers 2, 3, 4 replace 2, 4, 4 groups (the highest fake scores)
  const c = await runCli(['convert', '--analysis', join(dir, 'analysis.json'), '--budget', '0.5', '--calib-tokens', '128', '--out', conv, '--json']);
  assert.equal(c.code, 0, c.stderr);
  data = join(dir, 'text.txt');
  writeFileSync(data, readFileSync('data/tinystories-valid-excerpt/tinystories_val.txt', 'utf8').slice(0, 2500));
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** Converted stories260K: 10 of 20 KV groups kept (640 B/token); state 4 B x per layer 2r heads x 8x8 + 3 conv steps x 40r channels. */
const CONV_KV = 640, CONV_CONST = 4 * [2, 4, 4].reduce((s, r) => s + 2 * r * 64 + 3 * (40 * r), 0), FULL_KV = 5 * 4 * 8 * 2 * 4;
const LENGTHS = [1024, 4096, 16384];
const COST = ['--lengths', LENGTHS.join(','), '--prefill', '64', '--decode-at', '100', '--decode-tokens', '4'];

test('eval cost: bytes of stories260K and of the converted model equal the hand-computed values; rates are positive', async () => {
  assert.equal(CONV_CONST, 9920);
  const full = await record<CostResult>(['eval', 'cost', ...COST, '--label', 'full']);
  assert.equal(full.task, 'cost');
  assert.deepEqual([full.result.kvBytesPerToken, full.result.constantBytes], [FULL_KV, 0]);
  assert.deepEqual(full.result.lengths.map((l) => l.bytes), [1310720, 5242880, 20971520]);
  const hyb = await record<CostResult>(['eval', 'cost', conv, ...COST]);
  assert.deepEqual([hyb.result.kvBytesPerToken, hyb.result.constantBytes, hyb.result.fullKvBytesPerToken], [CONV_KV, CONV_CONST, FULL_KV]);
  assert.deepEqual(hyb.result.lengths.map((l) => l.bytes), [665280, 2631360, 10495680]);
  assert.deepEqual(hyb.result.lengths.map((l) => l.fullAttentionBytes), [1310720, 5242880, 20971520]);
  // what the memory really holds after the timed decode matches the formula
  assert.equal(hyb.result.decode.bytes, CONV_KV * 104 + CONV_CONST);
  assert.equal(full.result.decode.bytes, FULL_KV * 104);
  for (const r of [full, hyb]) {
    for (const rate of [r.result.prefill.tokPerS, r.result.decode.tokPerS]) assert.ok(rate > 0 && Number.isFinite(rate));
  }
});

test('eval cost --equal-cache: StreamingLLM and streaming heads sized to the converted cache at each length', async () => {
  const st = await record<CostResult>(['eval', 'cost', ...COST, '--memory', 'streaming', '--equal-cache', conv]);
  // keep = floor(converted bytes / 1280) tokens = 4 sinks + window; between steps the memory holds keep - 1
  assert.deepEqual(st.result.lengths.map((l) => l.bytes), [518 * 1280, 2054 * 1280, 8198 * 1280]);
  assert.equal(st.equalCache, conv);
  const sh = await record<CostResult>(['eval', 'cost', ...COST, '--memory', 'streaming-heads', '--equal-cache', conv]);
  // replaced groups: 640 B/token, window floor(9920 / 640) - 4 = 11, so 4 + 11 - 1 = 14 retained tokens
  assert.deepEqual(sh.result.lengths.map((l) => l.bytes), LENGTHS.map((L) => 640 * L + 640 * 14));
  assert.deepEqual(sh.settings.window, 11);
  assert.equal(sh.result.decode.bytes, 640 * 104 + 640 * 14);
  const bad = await runCli(['eval', 'cost', ...COST, '--equal-cache', conv]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--equal-cache needs a baseline memory, not --memory full/);
  const notConv = await runCli(['eval', 'cost', ...COST, '--memory', 'streaming', '--equal-cache', 'models/stories260K']);
  assert.match(notConv.stderr, /is not a converted model/);
  const lengths = await runCli(['eval', 'cost', '--lengths', '1k']);
  assert.match(lengths.stderr, /--lengths = 1k: 1k is not a number\n.*e\.g\. --lengths 1024,4096,16384/);
  const at = await runCli(['eval', 'cost', '--decode-at', '500']);
  assert.match(at.stderr, /--decode-at = 500 must be >= 1 with decode-at \+ decode-tokens <= 512/);
});

test('eval ppl --stride, --equal-cache and --out; eval agree; eval report renders every record', async () => {
  const out = (n: string): string => join(dir, `${n}.json`);
  const base = ['eval', 'ppl', '--data', data, '--ctx', '128'];
  const p1 = await record<PplResult>([...base, '--out', out('ppl-full')]);
  const p2 = await record<PplResult>([...base, '--stride', '32', '--label', 'stride 32', '--out', out('ppl-s32')]);
  assert.equal(p2.result.tokens, p1.result.tokens);
  assert.ok(p2.result.ppl <= p1.result.ppl);
  assert.deepEqual(JSON.parse(readFileSync(out('ppl-s32'), 'utf8')), p2);
  const eq = await record<PplResult>([...base, '--memory', 'streaming', '--equal-cache', conv, '--out', out('ppl-eq')]);
  // sized at ctx = 128 tokens: floor((640 * 128 + 9920) / 1280) = 71 tokens = 4 sinks + 67
  assert.deepEqual([eq.settings.sinks, eq.settings.window, eq.memory], [4, 67, 'streaming']);
  assert.match(eq.label, /streaming @ conv/);
  const a = await record<AgreeResult>(['eval', 'agree', '--teacher', 'models/stories260K', '--data', data, '--ctx', '128', '--max-tokens', '300',
    '--memory', 'streaming', '--window', '32', '--out', out('agree')]);
  assert.equal(a.result.tokens, 300);
  assert.ok(a.result.match < 1 && a.result.kl > 0);
  const self = await record<AgreeResult>(['eval', 'agree', '--teacher', 'models/stories260K', '--data', data, '--ctx', '128', '--max-tokens', '100']);
  assert.deepEqual([self.result.match, self.result.kl], [1, 0]);
  await runCli(['eval', 'cost', ...COST, '--out', out('cost')]);
  const html = join(dir, 'report.html');
  const r = await runCli(['eval', 'report', ...['ppl-full', 'ppl-s32', 'ppl-eq', 'agree', 'cost'].map(out), '--out', html, '--title', 'CLI report']);
  assert.equal(r.code, 0, r.stderr);
  const page = readFileSync(html, 'utf8');
  for (const t of ['ppl', 'agree', 'cost']) assert.equal(page.split(`data-chart="${t}"`).length - 1, 1, t);
  for (const l of ['stories260K', 'stride 32', 'stories260K streaming @ conv']) assert.ok(page.includes(l), l);
  assert.ok(!/NaN|undefined/.test(page));
  writeFileSync(out('bad'), JSON.stringify({ schema: 'recurformer.eval', version: 1, task: 'ppl', model: 'm', memory: 'full', label: 'x', settings: {}, result: { nll: 'a' } }));
  const bad = await runCli(['eval', 'report', out('bad'), '--out', html]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /bad\.json: is not a recurformer eval record: result\.nll is not a number/);
  const full = await runCli([...base, '--equal-cache', conv]);
  assert.match(full.stderr, /--equal-cache needs a baseline memory/);
});
