/**
 * Property tests (fast-check, bounded in runs and time) for the request schemas: any JSON value either parses or
 * becomes a 400 in OpenAI's shape; a valid request with one field replaced is rejected naming that field (or
 * accepted); and random bodies sent over HTTP never get anything but 200 or a 4xx with the error shape.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ApiError } from '../../src/server/errors.js';
import { chatSchema, completionSchema, parseBody } from '../../src/server/schema.js';
import { startServer, type TestServer } from './helpers.js';

const CTX = 512;
const LIMITS = { numRuns: 300, interruptAfterTimeLimit: 3000 };

const validCompletion = fc.record({
  model: fc.constant('stories260K'),
  prompt: fc.oneof(fc.string({ maxLength: 40 }), fc.tuple(fc.string({ maxLength: 40 }))),
  max_tokens: fc.option(fc.integer({ min: 1, max: CTX }), { nil: undefined }),
  temperature: fc.option(fc.double({ min: 0, max: 2, noNaN: true }), { nil: undefined }),
  top_p: fc.option(fc.double({ min: 0.01, max: 1, noNaN: true }), { nil: undefined }),
  top_k: fc.option(fc.nat({ max: 100 }), { nil: undefined }),
  seed: fc.option(fc.nat({ max: 2 ** 31 - 1 }), { nil: undefined }),
  stop: fc.option(fc.oneof(fc.string({ maxLength: 8 }), fc.array(fc.string({ maxLength: 8 }), { maxLength: 4 })), { nil: undefined }),
  stream: fc.option(fc.boolean(), { nil: undefined }),
}, { requiredKeys: ['model', 'prompt'] });

const validChat = fc.record({
  model: fc.constant('stories260K'),
  messages: fc.array(fc.record({ role: fc.constantFrom('system', 'user', 'assistant'), content: fc.string({ maxLength: 30 }) }),
    { minLength: 1, maxLength: 5 }),
  max_tokens: fc.option(fc.integer({ min: 1, max: CTX }), { nil: undefined }),
  temperature: fc.option(fc.double({ min: 0, max: 2, noNaN: true }), { nil: undefined }),
}, { requiredKeys: ['model', 'messages'] });

function checkError(r: unknown): void {
  assert.ok(r instanceof ApiError);
  assert.equal(r.status, 400);
  const { error } = r.body();
  assert.equal(typeof error.message, 'string');
  assert.equal(error.type, 'invalid_request_error');
}

test('any JSON value parses or is a 400, never a throw', () => {
  const parsers: ((v: unknown) => unknown)[] = [(v) => parseBody(completionSchema(CTX), v), (v) => parseBody(chatSchema(CTX), v)];
  for (const parse of parsers) {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
      const r = parse(v);
      if (r instanceof ApiError) checkError(r);
    }), LIMITS);
  }
});

test('valid requests parse, whatever the optional fields', () => {
  fc.assert(fc.property(validCompletion, (v) => !(parseBody(completionSchema(CTX), v) instanceof ApiError)), LIMITS);
  fc.assert(fc.property(validChat, (v) => !(parseBody(chatSchema(CTX), v) instanceof ApiError)), LIMITS);
});

test('one field replaced by a random value: accepted, or rejected naming that field', () => {
  const keys = ['model', 'prompt', 'max_tokens', 'temperature', 'top_p', 'top_k', 'min_p', 'seed', 'stop', 'stream', 'n'];
  fc.assert(fc.property(validCompletion, fc.constantFrom(...keys), fc.jsonValue({ maxDepth: 2 }), (v, key, junk) => {
    const r = parseBody(completionSchema(CTX), { ...v, [key]: junk });
    if (r instanceof ApiError) {
      checkError(r);
      assert.equal(r.param?.split('.')[0], key);
    }
  }), LIMITS);
});

let s: TestServer;
before(async () => (s = await startServer({ bodyLimit: 4096, maxQueue: 64 })));
after(() => s.close());

test('random bodies over HTTP get 200 or a 4xx in the error shape, and the server stays up', async () => {
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
    validCompletion.map((v) => JSON.stringify({ ...v, max_tokens: Math.min(v.max_tokens ?? 4, 4), stream: false })),
  );
  await fc.assert(fc.asyncProperty(body, fc.constantFrom('/v1/completions', '/v1/chat/completions'), async (b, path) => {
    const res = await fetch(`${s.url}${path}`, { method: 'POST', body: b, headers: { 'content-type': 'application/json' } });
    const json = await res.json() as { error?: { message: string } };
    if (res.status !== 200) {
      assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
      assert.equal(typeof json.error?.message, 'string');
    }
  }), { numRuns: 60, interruptAfterTimeLimit: 5000 });
  assert.equal((await fetch(`${s.url}/health`)).status, 200);
});
