/** convert -> inspect -> generate through the CLI, with a synthetic analysis.json; --memory streaming. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeAnalysis, runCli } from '../helpers/cli.js';

test('convert --budget 0.5, then inspect reports half the KV bytes and the recurrent heads; the result generates', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-convcli-'));
  try {
    const a = join(dir, 'analysis.json');
    writeFileSync(a, JSON.stringify(fakeAnalysis()));
    const out = join(dir, 'conv');
    const c = await runCli(['convert', '--analysis', a, '--budget', '0.5', '--calib-tokens', '128', '--out', out, '--json']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal((JSON.parse(c.stdout) as { replacedGroups: number }).replacedGroups, 10);
    const plan = JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')) as { schema: string };
    assert.equal(plan.schema, 'recurformer.plan');
    const i = JSON.parse((await runCli(['inspect', out, '--json'])).stdout) as Record<string, number>;
    assert.equal(i.kvBytesPerToken, 640);
    assert.equal(i.fullKvBytesPerToken, 1280);
    assert.equal(i.recurrentHeads, 20);
    assert.equal(i.attentionHeads, 20);
    // per layer with r replaced groups: 2r heads x P*N (8 x 8) + 3 conv steps x (2r*8 + r*8 + 2r*8) channels
    assert.equal(i.constantStateBytes, 4 * [2, 4, 4].reduce((s, r) => s + 2 * r * 64 + 3 * (40 * r), 0));
    const g = await runCli(['generate', out, '--temperature', '0', '--max-tokens', '20', '--json']);
    assert.equal(g.code, 0, g.stderr);
    assert.ok((JSON.parse(g.stdout) as { ids: number[] }).ids.length > 0);
    // an edited plan is accepted as is
    const again = await runCli(['convert', '--plan', join(out, 'plan.json'), '--out', join(dir, 'conv2'), '--json']);
    assert.equal(again.code, 0, again.stderr);
    // the same groups as the streaming-heads baseline on the original model
    const sh = await runCli(['generate', '--temperature', '0', '--max-tokens', '30', '--memory', 'streaming-heads', '--plan', join(out, 'plan.json'), '--window', '8', '--json']);
    assert.equal(sh.code, 0, sh.stderr);
    const noPlan = await runCli(['generate', '--memory', 'streaming-heads']);
    assert.match(noPlan.stderr, /--plan is required/);
    const bad = await runCli(['convert', '--analysis', a, '--out', join(dir, 'x')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /exactly one is required/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generate --memory streaming uses the StreamingLLM baseline; unknown memory kinds are errors', async () => {
  const s = await runCli(['generate', '--temperature', '0', '--max-tokens', '40', '--memory', 'streaming', '--window', '1000', '--json']);
  const f = await runCli(['generate', '--temperature', '0', '--max-tokens', '40', '--json']);
  assert.equal(JSON.parse(s.stdout).text, JSON.parse(f.stdout).text, 'a window longer than the text changes nothing');
  const n = await runCli(['generate', '--temperature', '0', '--max-tokens', '60', '--memory', 'streaming', '--sinks', '1', '--window', '4', '--json']);
  assert.notEqual(JSON.parse(n.stdout).text, JSON.parse(f.stdout).text);
  const u = await runCli(['generate', '--memory', 'lossy']);
  assert.equal(u.code, 1);
  assert.match(u.stderr, /lossy is not a memory kind/);
});
