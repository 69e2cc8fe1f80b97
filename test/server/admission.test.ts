/**
 * Admission: a burst cannot slip past the queue limit, and the work done before a request is admitted is bounded
 * (size checks, no tokenizing for refused requests, one tokenization per event-loop turn).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { DecodeSession } from '../../src/inference/session.js';
import { ApiError } from '../../src/server/errors.js';
import { Scheduler } from '../../src/server/scheduler.js';
import { post, startServer, tokenizer, type TestServer } from './helpers.js';

interface RawResponse {
  status: number;
  head: string;
  json: { error?: { message: string; type: string; param: string | null; code: string | null } } & Record<string, unknown>;
}

/**
 * Sends `bodies` as simultaneous POSTs: every socket connects and is accepted by the server first, then all
 * requests are written in one synchronous loop, so the server reads them together, before its decode loop has
 * run a round.
 */
async function burst(s: TestServer, path: string, bodies: string[]): Promise<RawResponse[]> {
  const { hostname, port } = new URL(s.url);
  let accepted = 0;
  const onConnection = (): void => void accepted++;
  s.server.app.server.on('connection', onConnection);
  const sockets = await Promise.all(bodies.map(() => new Promise<Socket>((resolve, reject) => {
    const c = connect(Number(port), hostname, () => resolve(c));
    c.on('error', reject);
  })));
  for (let i = 0; accepted < bodies.length; i++) {
    if (i > 1000) throw new Error(`the server accepted ${accepted} of ${bodies.length} connections`);
    await new Promise((r) => setTimeout(r, 5));
  }
  s.server.app.server.off('connection', onConnection);
  const replies = sockets.map((c) => new Promise<RawResponse>((resolve, reject) => {
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('error', reject);
    c.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      const at = text.indexOf('\r\n\r\n');
      resolve({ status: Number(text.split(' ')[1]), head: text.slice(0, at), json: JSON.parse(text.slice(at + 4)) });
    });
  }));
  sockets.forEach((c, i) => c.write(`POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n`
    + `Content-Length: ${Buffer.byteLength(bodies[i]!)}\r\nConnection: close\r\n\r\n${bodies[i]}`));
  return Promise.all(replies);
}

const completion = (o: object = {}): string => JSON.stringify({ model: 'stories260K', prompt: '', max_tokens: 100, temperature: 0, ...o });

/** The bundled tokenizer with `encode` counted; `onEncode` runs before each call. */
function spyTokenizer(onEncode: () => void = () => {}): Tokenizer & { calls: number } {
  const spy = Object.create(tokenizer) as Tokenizer & { calls: number };
  spy.calls = 0;
  spy.encode = (text, opts) => {
    spy.calls++;
    onEncode();
    return tokenizer.encode(text, opts);
  };
  return spy;
}

// [maxConcurrent, maxQueue, requests]; undefined: the defaults (4 and 16)
for (const [maxConcurrent, maxQueue, n] of [[1, 1, 10], [2, 3, 12], [undefined, undefined, 30]] as const) {
  const admitted = (maxConcurrent ?? 4) + (maxQueue ?? 16);
  const limits = maxConcurrent === undefined ? 'the default limits' : `--max-concurrent ${maxConcurrent} --max-queue ${maxQueue}`;
  test(`a burst of ${n} at ${limits}: exactly ${admitted} admitted, the rest 429`, async () => {
    const s = await startServer({ maxConcurrent, maxQueue });
    try {
      const replies = await burst(s, '/v1/completions', Array.from({ length: n }, () => completion({ max_tokens: 50 })));
      const ok = replies.filter((r) => r.status === 200), refused = replies.filter((r) => r.status === 429);
      assert.equal(ok.length, admitted, replies.map((r) => r.status).join(' '));
      assert.equal(refused.length, n - ok.length, replies.map((r) => r.status).join(' '));
      for (const r of refused) {
        assert.deepEqual(r.json, { error: { message: 'the request queue is full, retry later', type: 'rate_limit_error', param: null, code: 'queue_full' } });
        assert.match(r.head, /^retry-after: 1$/im);
      }
      for (const r of ok) assert.equal((r.json.choices as unknown[]).length, 1);
      assert.equal(s.server.context.scheduler.activeCount + s.server.context.scheduler.queueDepth, 0);
    } finally {
      await s.close();
    }
  });
}

test('the scheduler counts admitted requests against the limit until they submit or release', () => {
  const sch = new Scheduler({ maxConcurrent: 1, maxQueue: 1 });
  const a = sch.admit(), b = sch.admit();
  assert.throws(() => sch.admit(), (e: unknown) => e instanceof ApiError && e.status === 429);
  b.release();
  b.release(); // a second release must not free a second place
  const c = sch.admit();
  assert.throws(() => sch.admit(), (e: unknown) => e instanceof ApiError && e.status === 429);
  a.release();
  c.release();
});

test('a prompt over --max-prompt-chars is a 400 naming the limit, before any tokenizing', async () => {
  const spy = spyTokenizer();
  const s = await startServer({ tokenizer: spy });
  try {
    const limit = s.server.context.maxPromptChars;
    assert.equal(limit, 512 * 16);
    const r = await post(`${s.url}/v1/completions`, completion({ prompt: 'a'.repeat(limit + 1) }));
    assert.equal(r.status, 400);
    assert.equal(r.json.error!.code, 'prompt_too_long');
    assert.equal(r.json.error!.param, 'prompt');
    assert.match(r.json.error!.message, new RegExp(`${limit + 1} characters.*limit of ${limit}.*--max-prompt-chars`));
    const chat = await post(`${s.url}/v1/chat/completions`, JSON.stringify({ model: 'stories260K',
      messages: [{ role: 'system', content: 'b'.repeat(limit / 2) }, { role: 'user', content: [{ type: 'text', text: 'c'.repeat(limit / 2 + 1) }] }] }));
    assert.equal(chat.status, 400);
    assert.equal(chat.json.error!.code, 'prompt_too_long');
    assert.equal(chat.json.error!.param, 'messages');
    assert.equal(spy.calls, 0, 'nothing was tokenized');
    const fits = await post(`${s.url}/v1/completions`, completion({ prompt: 'Once upon a time', max_tokens: 2 }));
    assert.equal(fits.status, 200);
    assert.equal(spy.calls, 1);
  } finally {
    await s.close();
  }
});

test('maxPromptChars can be set; the limit counts characters before tokenizing', async () => {
  const spy = spyTokenizer();
  const s = await startServer({ tokenizer: spy, maxPromptChars: 10 });
  try {
    assert.equal((await post(`${s.url}/v1/completions`, completion({ prompt: 'x'.repeat(10), max_tokens: 1 }))).status, 200);
    const r = await post(`${s.url}/v1/completions`, completion({ prompt: 'x'.repeat(11) }));
    assert.equal(r.json.error!.code, 'prompt_too_long');
    assert.equal(spy.calls, 1);
  } finally {
    await s.close();
  }
});

test('a request refused with 429 is never tokenized', async () => {
  const spy = spyTokenizer();
  const s = await startServer({ tokenizer: spy, maxConcurrent: 1, maxQueue: 0 });
  try {
    const { model, scheduler } = s.server.context;
    const held = scheduler.submit(new DecodeSession(model, tokenizer, [1], { maxTokens: 400 }), () => {});
    const r = await post(`${s.url}/v1/completions`, completion({ prompt: 'Once upon a time there was a little girl.' }));
    assert.equal(r.status, 429);
    assert.equal(r.json.error!.code, 'queue_full');
    assert.equal(spy.calls, 0);
    held.cancel();
  } finally {
    await s.close();
  }
});

test('a burst of prompts is tokenized one per event-loop turn, not in one block', async () => {
  // a turn counter advanced once per event-loop iteration (setImmediate re-arms for the next one)
  let turn = 0, ticking = true;
  const tick = (): void => {
    turn++;
    if (ticking) setImmediate(tick);
  };
  tick();
  const turns: number[] = [];
  const s = await startServer({ tokenizer: spyTokenizer(() => turns.push(turn)), maxConcurrent: 4, maxQueue: 0 });
  try {
    const prompt = 'Once upon a time there was a little girl. '.repeat(10);
    const replies = await burst(s, '/v1/completions', Array.from({ length: 4 }, () => completion({ prompt, max_tokens: 2 })));
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200]);
    assert.equal(turns.length, 4);
    assert.equal(new Set(turns).size, 4, `tokenized in turns ${turns.join(', ')}`);
  } finally {
    ticking = false;
    await s.close();
  }
});
