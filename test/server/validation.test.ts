/** Bad input never crashes or hangs the server: every case gets a 4xx in OpenAI's error shape. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import OpenAI from 'openai';
import { post, startServer, type TestServer } from './helpers.js';

let s: TestServer;
before(async () => (s = await startServer({ bodyLimit: 64 * 1024 })));
after(() => s.close());

const ok = { model: 'stories260K', prompt: 'Hi', max_tokens: 2 };

function assertError(r: Awaited<ReturnType<typeof post>>, status: number, code: string | null, param?: string | null): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.ok(r.json.error, 'OpenAI error shape');
  const e = r.json.error;
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof e.message, 'string');
  assert.equal(e.code, code);
  if (param !== undefined) assert.equal(e.param, param);
}

const cases: [string, () => Promise<Awaited<ReturnType<typeof post>>>, number, string | null, string | null | undefined][] = [
  ['malformed JSON', () => post(`${s.url}/v1/completions`, '{"model": "stories260K", "prompt": '), 400, 'invalid_json', null],
  ['an empty body', () => post(`${s.url}/v1/completions`, ''), 400, 'invalid_json', undefined],
  ['a JSON array body', () => post(`${s.url}/v1/completions`, '[1,2]'), 400, 'invalid_type', null],
  ['a JSON string body', () => post(`${s.url}/v1/chat/completions`, '"hello"'), 400, 'invalid_type', null],
  ['a missing prompt', () => post(`${s.url}/v1/completions`, JSON.stringify({ model: 'stories260K' })), 400, 'invalid_union', 'prompt'],
  ['a numeric prompt', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, prompt: 5 })), 400, 'invalid_union', 'prompt'],
  ['a string max_tokens', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, max_tokens: '5' })), 400, 'invalid_type', 'max_tokens'],
  ['a negative max_tokens', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, max_tokens: -1 })), 400, 'too_small', 'max_tokens'],
  ['a fractional max_tokens', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, max_tokens: 1.5 })), 400, 'invalid_type', 'max_tokens'],
  ['a huge max_tokens', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, max_tokens: 1e12 })), 400, 'too_big', 'max_tokens'],
  ['a temperature of 5', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, temperature: 5 })), 400, 'too_big', 'temperature'],
  ['top_p 0', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, top_p: 0 })), 400, 'too_small', 'top_p'],
  ['n = 2', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, n: 2 })), 400, 'invalid_value', 'n'],
  ['five stop strings', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, stop: ['a', 'b', 'c', 'd', 'e'] })), 400, 'invalid_union', 'stop'],
  ['a stream flag of "yes"', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, stream: 'yes' })), 400, 'invalid_type', 'stream'],
  ['an unknown model', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, model: 'gpt-4' })), 404, 'model_not_found', 'model'],
  ['a prompt longer than the context', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, prompt: 'Once upon a time '.repeat(200) })),
    400, 'context_length_exceeded', 'prompt'],
  ['chat without messages', () => post(`${s.url}/v1/chat/completions`, JSON.stringify({ model: 'stories260K', messages: [] })), 400, 'too_small', 'messages'],
  ['chat with a bad role', () => post(`${s.url}/v1/chat/completions`, JSON.stringify({ model: 'stories260K', messages: [{ role: 'robot', content: 'x' }] })),
    400, 'invalid_value', 'messages.0.role'],
  ['chat longer than the context', () => post(`${s.url}/v1/chat/completions`, JSON.stringify({ model: 'stories260K',
    messages: [{ role: 'user', content: 'The big dog ran. '.repeat(150) }] })), 400, 'context_length_exceeded', 'messages'],
  ['invalid UTF-8', () => post(`${s.url}/v1/completions`, Buffer.concat([Buffer.from('{"model":"stories260K","prompt":"'),
    Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')])), 400, 'invalid_encoding', null],
  ['an oversize body', () => post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, prompt: 'a'.repeat(100_000) })), 413, 'body_too_large', null],
  ['a text/plain body', () => post(`${s.url}/v1/completions`, 'hello', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type', null],
  ['a text/plain body holding JSON', () => post(`${s.url}/v1/completions`, JSON.stringify(ok), { 'content-type': 'text/plain; charset=utf-8' }),
    415, 'unsupported_media_type', null],
  ['an XML body', () => post(`${s.url}/v1/completions`, '<a/>', { 'content-type': 'application/xml' }), 415, 'unsupported_media_type', null],
];

for (const [name, send, status, code, param] of cases) {
  test(`${name} -> ${status} ${code}`, async () => assertError(await send(), status, code, param));
}

test('413 and 415 say what was wrong and how to fix it', async () => {
  const big = await post(`${s.url}/v1/completions`, JSON.stringify({ ...ok, prompt: 'a'.repeat(100_000) }));
  assert.match(big.json.error!.message, /65536 bytes.*--body-limit/);
  const text = await post(`${s.url}/v1/completions`, 'hello', { 'content-type': 'text/plain' });
  assert.match(text.json.error!.message, /text\/plain.*application\/json/);
  assert.equal(text.json.error!.type, 'invalid_request_error');
});

test('an oversize chunked body (no Content-Length) is a 413 too', async () => {
  const u = new URL(`${s.url}/v1/completions`);
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST',
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      let b = '';
      res.on('data', (d: Buffer) => (b += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: b }));
    });
    req.on('error', reject);
    req.write('{"model":"stories260K","prompt":"');
    for (let i = 0; i < 80; i++) req.write('a'.repeat(1024));
    req.end('"}');
  });
  assert.equal(status, 413);
  assert.equal(JSON.parse(body).error.code, 'body_too_large');
});

test('an unknown route is a 404 in the error shape', async () => {
  const r = await fetch(`${s.url}/v1/embeddings`);
  assert.equal(r.status, 404);
  assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'not_found');
});

test('after all the bad input the server still serves', async () => {
  const r = await s.client.completions.create({ model: 'stories260K', prompt: '', max_tokens: 5, temperature: 0 });
  assert.equal(r.choices[0]!.text, 'Once upon a time,');
});

test('--api-key guards every route but /health (401 in the error shape); the client with the key works', async () => {
  const k = await startServer({ apiKey: 'sekrit' });
  try {
    for (const path of ['/v1/models', '/metrics', '/']) {
      const r = await fetch(`${k.url}${path}`);
      assert.equal(r.status, 401, path);
      assert.equal(((await r.json()) as { error: { type: string } }).error.type, 'authentication_error');
    }
    const wrong = await post(`${k.url}/v1/completions`, JSON.stringify(ok), { authorization: 'Bearer nope' });
    assertError(wrong, 401, 'invalid_api_key', null);
    assert.equal((await fetch(`${k.url}/health`)).status, 200);
    assert.equal((await fetch(`${k.url}/?api_key=sekrit`)).status, 200);
    const r = await k.client.completions.create({ model: 'stories260K', prompt: '', max_tokens: 3, temperature: 0 });
    assert.equal(r.choices.length, 1);
    const bad = new OpenAI({ baseURL: `${k.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
  } finally {
    await k.close();
  }
});

test('the openai client surfaces 4xx errors as typed exceptions', async () => {
  await assert.rejects(s.client.completions.create({ model: 'nope', prompt: 'x' }), (e: unknown) => e instanceof OpenAI.NotFoundError);
  await assert.rejects(s.client.completions.create({ model: 'stories260K', prompt: 'x', max_tokens: -3 }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens');
});
