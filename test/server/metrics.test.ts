/** /metrics: Prometheus text with requests, tokens in/out, tokens/s, queue depth and cache bytes by memory kind. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../src/server/metrics.js';
import { startServer } from './helpers.js';

test('/metrics counts requests and tokens after a completion, and every sample line parses', async () => {
  const s = await startServer();
  try {
    await s.client.completions.create({ model: 'stories260K', prompt: 'Once upon', max_tokens: 12, temperature: 0 });
    await fetch(`${s.url}/v1/completions`, { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } });
    await s.client.models.list();
    const res = await fetch(`${s.url}/metrics`);
    assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const samples = new Map<string, number>();
    for (const line of text.trimEnd().split('\n')) {
      if (line.startsWith('#')) {
        assert.match(line, /^# (HELP|TYPE) recurformer_\w+ /);
        continue;
      }
      const m = /^(recurformer_\w+(?:\{[^}]*\})?) (-?[\d.e+]+)$/.exec(line);
      assert.ok(m, `unparsable sample: ${line}`);
      samples.set(m[1]!, Number(m[2]));
    }
    assert.equal(samples.get('recurformer_requests_total{route="/v1/completions",status="200"}'), 1);
    assert.equal(samples.get('recurformer_requests_total{route="/v1/completions",status="400"}'), 1);
    assert.equal(samples.get('recurformer_requests_total{route="/v1/models",status="200"}'), 1);
    assert.equal(samples.get('recurformer_prompt_tokens_total{memory_kind="full"}'), 3);
    assert.equal(samples.get('recurformer_completion_tokens_total{memory_kind="full"}'), 12);
    assert.equal(samples.get('recurformer_queue_depth'), 0);
    assert.equal(samples.get('recurformer_active_sessions'), 0);
    assert.equal(samples.get('recurformer_cache_bytes{memory_kind="full"}'), 0);
    assert.ok(samples.has('recurformer_tokens_per_second{memory_kind="full"}'));
    assert.ok(samples.has('recurformer_cache_full_attention_bytes{memory_kind="full"}'));
  } finally {
    await s.close();
  }
});

test('tokens per second averages whole seconds of the last window', () => {
  const m = new Metrics();
  const t0 = 1_000_000_000;
  for (let i = 0; i < 90; i++) m.decoded('full', t0 + i * 100); // 10 tokens a second for 9 s
  assert.equal(m.tokensPerSecond('full', t0 + 9_000), 10);
  assert.equal(m.tokensPerSecond('full', t0 + 60_000), 0);
  assert.equal(m.tokensPerSecond('hybrid', t0), 0);
});
