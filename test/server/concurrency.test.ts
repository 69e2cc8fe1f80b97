/** Queue limits (429 + Retry-After), token-by-token interleaving, cancellation on disconnect, graceful shutdown. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DecodeSession } from '../../src/inference/session.js';
import { post, startServer, type TestServer } from './helpers.js';

const body = (o: object = {}): string => JSON.stringify({ model: 'stories260K', prompt: '', max_tokens: 400, temperature: 0, ...o });

/** Opens a streaming completion and resolves once its first data chunk has arrived. */
async function openStream(s: TestServer, o: object = {}, signal?: AbortSignal) {
  const res = await fetch(`${s.url}/v1/completions`, { method: 'POST', signal, headers: { 'content-type': 'application/json' },
    body: body({ stream: true, ...o }) });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = dec.decode((await reader.read()).value, { stream: true });
  const rest = async (): Promise<string> => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return text;
      text += dec.decode(value, { stream: true });
    }
  };
  return { res, first: text, rest };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const metric = async (s: TestServer, name: string): Promise<number> => {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  assert.ok(line, `${name} in /metrics`);
  return Number(line.split(' ').at(-1));
};

test('a full queue answers 429 with Retry-After; queued work then runs', async () => {
  const s = await startServer({ maxConcurrent: 1, maxQueue: 1 });
  try {
    const { model, tokenizer, scheduler } = s.server.context;
    // fill the slot and the queue directly, so the test does not race the decoder
    const held = [0, 1].map(() => scheduler.submit(new DecodeSession(model, tokenizer, [1], { maxTokens: 400 }), () => {}));
    await until(() => scheduler.activeCount === 1 && scheduler.queueDepth === 1, 'one running, one queued');
    const r = await post(`${s.url}/v1/completions`, body({ max_tokens: 2 }));
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '1');
    assert.equal(r.json.error!.type, 'rate_limit_error');
    assert.equal(r.json.error!.code, 'queue_full');
    assert.equal(await metric(s, 'recurformer_queue_depth'), 1);
    for (const j of held) j.cancel();
    const ok = await post(`${s.url}/v1/completions`, body({ max_tokens: 2 }));
    assert.equal(ok.status, 200);
  } finally {
    await s.close();
  }
});

test('the scheduler interleaves running sessions one token each per round', async () => {
  const s = await startServer({ maxConcurrent: 3, maxQueue: 0 });
  try {
    const { model, tokenizer, scheduler } = s.server.context;
    const seen: number[] = [];
    const jobs = [0, 1, 2].map((i) => scheduler.submit(new DecodeSession(model, tokenizer, [1], { maxTokens: 5 + i, temperature: 0 }),
      () => seen.push(i)));
    const outcomes = await Promise.all(jobs.map((j) => j.promise));
    // 5, 6 and 7 tokens (+1 finishing step where max tokens is not reached within a step): round-robin order
    assert.deepEqual(seen.slice(0, 15), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
    assert.deepEqual(outcomes.map((o) => o.result.ids.length), [5, 6, 7]);
  } finally {
    await s.close();
  }
});

test('concurrent sessions each equal their solo run', async () => {
  const s = await startServer({ maxConcurrent: 3, maxQueue: 0 });
  try {
    const solo = await post(`${s.url}/v1/completions`, body({ max_tokens: 30 }));
    const order: number[] = [];
    const { scheduler } = s.server.context;
    const runs = await Promise.all([0, 1, 2].map(async (i) => {
      const r = await post(`${s.url}/v1/completions`, body({ max_tokens: 30 }));
      order.push(i);
      return r;
    }));
    for (const r of runs) assert.deepEqual((r.json.choices as { text: string }[])[0]!.text, (solo.json.choices as { text: string }[])[0]!.text);
    assert.equal(scheduler.activeCount, 0);
    assert.equal(order.length, 3);
  } finally {
    await s.close();
  }
});

test('a client that disconnects mid-stream cancels its session and frees its cache at once', async () => {
  const s = await startServer({ maxConcurrent: 2 });
  try {
    const { scheduler } = s.server.context;
    const ac = new AbortController();
    const st = await openStream(s, {}, ac.signal);
    assert.ok(st.first.startsWith('data: '));
    assert.equal(scheduler.activeCount, 1);
    const job = scheduler.active[0]!;
    assert.ok(job.session.bytes() > 0);
    ac.abort();
    await until(() => scheduler.activeCount === 0, 'the session to be cancelled');
    assert.equal(job.state, 'cancelled');
    assert.equal(job.session.bytes(), 0);
    assert.ok(job.session.ids.length < 345, 'stopped before the end');
    assert.equal(await metric(s, 'recurformer_cache_bytes{memory_kind="full"}'), 0);
    assert.equal(await metric(s, 'recurformer_cancelled_total{memory_kind="full"}'), 1);
    assert.equal(await metric(s, 'recurformer_requests_total{route="/v1/completions",status="499"}'), 1);
  } finally {
    await s.close();
  }
});

test('a non-streaming client that disconnects cancels its session too', async () => {
  const s = await startServer();
  try {
    const { scheduler } = s.server.context;
    const ac = new AbortController();
    const p = fetch(`${s.url}/v1/completions`, { method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json' },
      body: body({ max_tokens: 500 }) }).catch((e: Error) => e);
    await until(() => scheduler.activeCount === 1 && scheduler.active[0]!.session.ids.length > 0, 'decoding to start');
    const job = scheduler.active[0]!;
    ac.abort();
    assert.ok((await p) instanceof Error);
    await until(() => job.settled, 'the job to settle');
    assert.equal(job.state, 'cancelled');
    assert.equal(job.session.bytes(), 0);
  } finally {
    await s.close();
  }
});

test('shutdown lets a running stream finish, refuses new requests, and resolves', async () => {
  const s = await startServer();
  const st = await openStream(s, { max_tokens: 40 });
  const closed = s.server.shutdown();
  const refused = await fetch(`${s.url}/v1/models`).then((r) => r.status, () => 'refused');
  assert.ok(refused === 503 || refused === 'refused', String(refused));
  const text = await st.rest();
  assert.ok(text.endsWith('data: [DONE]\n\n'));
  assert.match(text, /"finish_reason":"length"/);
  await closed;
  await s.server.shutdown(); // idempotent
});

test('shutdown past its grace period cancels running sessions and ends their responses', async () => {
  const s = await startServer({ graceMs: 0, maxConcurrent: 1, maxQueue: 2 });
  const streaming = await openStream(s);
  const plain = post(`${s.url}/v1/completions`, body()); // queued behind the stream
  await until(() => s.server.context.scheduler.queueDepth === 1, 'the second request to queue');
  await s.server.shutdown();
  const text = await streaming.rest();
  assert.match(text, /"code":"shutting_down"/);
  assert.ok(text.endsWith('data: [DONE]\n\n'));
  const r = await plain;
  assert.equal(r.status, 503);
  assert.equal(r.json.error!.code, 'shutting_down');
  assert.equal(s.server.context.scheduler.activeCount, 0);
});
