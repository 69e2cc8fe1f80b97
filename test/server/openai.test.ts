/** The openai npm client against the in-process server: completions and chat, streaming and not, and the golden text. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runCliChild, startServer, type TestServer } from './helpers.js';

const golden = readFileSync(new URL('../fixtures/golden/stories260K-greedy.txt', import.meta.url), 'utf8').trimEnd();
let s: TestServer;
before(async () => (s = await startServer()));
after(() => s.close());

test('greedy completion of an empty prompt (max_tokens 256, temperature 0) equals the golden text', async () => {
  const r = await s.client.completions.create({ model: 'stories260K', prompt: '', max_tokens: 256, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0]!.text, golden);
  assert.equal(r.choices[0]!.finish_reason, 'length');
  assert.deepEqual(r.usage, { prompt_tokens: 1, completion_tokens: 256, total_tokens: 257 });
});

test('greedy completion equals `recurformer generate` for the same prompt (ids and text)', async () => {
  const cli = await runCliChild(['generate', '--prompt', 'Tim and his dog', '--temperature', '0', '--max-tokens', '60', '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  const want = JSON.parse(cli.stdout) as { text: string; ids: number[]; promptIds: number[] };
  const r = await s.client.completions.create({ model: 'stories260K', prompt: 'Tim and his dog', max_tokens: 60, temperature: 0 });
  // the same tokens; a completion keeps any space that joins it to the prompt (generate's text drops it)
  assert.equal(r.choices[0]!.text.trimStart(), want.text.trimStart());
  const lily = await s.client.completions.create({ model: 'stories260K', prompt: 'Lily', max_tokens: 3, temperature: 0 });
  assert.equal(lily.choices[0]!.text, ' and Tom'); // "Lily and Tom", not "Lilyand Tom"
  assert.equal(r.usage!.prompt_tokens, want.promptIds.length);
  assert.equal(r.usage!.completion_tokens, want.ids.length);
});

test('streamed completion chunks add up to the non-streamed text', async () => {
  const args = { model: 'stories260K', prompt: 'Once upon a time', max_tokens: 60, temperature: 0.8, seed: 5 };
  const whole = await s.client.completions.create(args);
  const stream = await s.client.completions.create({ ...args, stream: true, stream_options: { include_usage: true } });
  let text = '', finish: string | null = null, usage = null;
  for await (const c of stream) {
    if (c.choices[0]) {
      text += c.choices[0].text;
      finish = c.choices[0].finish_reason ?? finish;
    }
    if (c.usage) usage = c.usage;
  }
  assert.equal(text, whole.choices[0]!.text);
  assert.equal(finish, whole.choices[0]!.finish_reason);
  assert.deepEqual(usage, whole.usage);
});

test('a stop string ends the completion with finish_reason "stop" and is not in the text', async () => {
  const r = await s.client.completions.create({ model: 'stories260K', prompt: '', max_tokens: 200, temperature: 0, stop: 'red ball' });
  assert.equal(r.choices[0]!.finish_reason, 'stop');
  assert.ok(golden.startsWith(r.choices[0]!.text) && r.choices[0]!.text.endsWith('she saw a big, '), r.choices[0]!.text);
});

test('chat, non-streaming and streaming, give the same greedy reply', async () => {
  const messages = [{ role: 'system' as const, content: 'Tell a story.' }, { role: 'user' as const, content: 'A cat' }];
  const r = await s.client.chat.completions.create({ model: 'stories260K', messages, max_tokens: 40, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0]!.message.role, 'assistant');
  const reply = r.choices[0]!.message.content ?? '';
  assert.ok(reply.length > 0);
  const stream = await s.client.chat.completions.create({ model: 'stories260K', messages, max_tokens: 40, temperature: 0, stream: true });
  let text = '', role = '', chunks = 0;
  for await (const c of stream) {
    chunks++;
    assert.equal(c.object, 'chat.completion.chunk');
    role ||= c.choices[0]?.delta.role ?? '';
    text += c.choices[0]?.delta.content ?? '';
  }
  assert.equal(role, 'assistant');
  assert.equal(text, reply);
  assert.ok(chunks > 3, `${chunks} chunks: tokens must stream`);
});

test('chat content parts are joined like a string message', async () => {
  const a = await s.client.chat.completions.create({ model: 'stories260K', max_tokens: 10, temperature: 0,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Once ' }, { type: 'text', text: 'upon' }] }] });
  const b = await s.client.chat.completions.create({ model: 'stories260K', max_tokens: 10, temperature: 0,
    messages: [{ role: 'user', content: 'Once upon' }] });
  assert.equal(a.choices[0]!.message.content, b.choices[0]!.message.content);
});

test('models list names the served model; /health is ok', async () => {
  const list = await s.client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['stories260K']);
  const h = await fetch(`${s.url}/health`);
  assert.deepEqual(await h.json(), { status: 'ok' });
});

test('streaming with cache_stats reports cache bytes equal to full attention for the KV cache', async () => {
  const res = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'stories260K', prompt: 'Hi', max_tokens: 8, temperature: 0, stream: true, cache_stats: true }) });
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const events = (await res.text()).split('\n\n').filter(Boolean);
  assert.equal(events.at(-1), 'data: [DONE]');
  const caches = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)).cache).filter(Boolean);
  assert.ok(caches.length >= 7);
  for (const c of caches) {
    assert.equal(c.memory_kind, 'full');
    assert.equal(c.bytes, c.full_attention_bytes);
    assert.equal(c.bytes, 5 * 2 * c.tokens * 4 * 8 * 4); // layers * (k, v) * tokens * kv heads * head dim * f32
  }
});
