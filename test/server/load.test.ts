/**
 * A small, bounded version of bench/load.ts as a test: autocannon sends 60 streaming requests over 12 loopback
 * connections to a server with 2 decode slots and a queue of 4. Only 200s and deliberate 429s may come back, and
 * once idle no session or cache byte is left.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import autocannon from 'autocannon';
import { startServer } from './helpers.js';

test('12 concurrent streaming clients: only 200 and 429, nothing held afterwards', { timeout: 30_000 }, async () => {
  const s = await startServer({ maxConcurrent: 2, maxQueue: 4 });
  try {
    const r = await autocannon({
      url: `${s.url}/v1/completions`, method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 12, temperature: 0.8, stream: true }),
      connections: 12, amount: 60, timeout: 10,
    });
    const codes = Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([c, v]) => [c, v.count ?? 0]));
    assert.deepEqual(Object.keys(codes).filter((c) => c !== '200' && c !== '429'), [], JSON.stringify(codes));
    assert.equal(r.errors, 0);
    assert.equal(r.timeouts, 0);
    assert.ok((codes['200'] ?? 0) >= 6, JSON.stringify(codes));
    assert.ok((codes['429'] ?? 0) > 0, `12 clients on 6 slots must see some 429s: ${JSON.stringify(codes)}`);
    const { scheduler } = s.server.context;
    await scheduler.idle();
    assert.equal(scheduler.activeCount + scheduler.queueDepth, 0);
    const m = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(m, /^recurformer_cache_bytes\{memory_kind="full"\} 0$/m);
    const out = Number(/^recurformer_completion_tokens_total\{memory_kind="full"\} (\d+)$/m.exec(m)![1]);
    assert.ok(out > 0 && out <= (codes['200'] ?? 0) * 12, `${out} tokens`); // an end token may stop one early
  } finally {
    await s.close();
  }
});
