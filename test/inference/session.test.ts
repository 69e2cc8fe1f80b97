/** The stepwise session equals generateIds: golden greedy text, sampled runs with stop strings, and cancellation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadModel } from '../../src/io/model-load.js';
import { buildModel } from '../../src/io/build.js';
import { generate, promptIds } from '../../src/inference/generate.js';
import { DecodeSession, fullAttentionBytes, generateAsync } from '../../src/inference/session.js';

const lm = loadModel(new URL('../../models/stories260K', import.meta.url).pathname);
const model = buildModel(lm);
const tok = lm.tokenizer!;
const golden = readFileSync(new URL('../fixtures/golden/stories260K-greedy.txt', import.meta.url), 'utf8');

test('greedy session of an empty prompt equals the golden text', async () => {
  let streamed = '';
  const s = new DecodeSession(model, tok, promptIds(tok, ''), { maxTokens: 256, temperature: 0 });
  const r = await generateAsync(s, (_id, d) => (streamed += d));
  assert.equal(r.text, golden.trimEnd());
  assert.equal(streamed, r.text);
});

for (const [prompt, stop, maxTokens] of [['Once upon a time', [], 80], ['Tim', ['Lily'], 120], ['', ['ball.', 'mom said'], 200],
  ['The dog', [], 0], ['A', ['zzz'], 1]] as const) {
  test(`session equals generateIds (prompt ${JSON.stringify(prompt)}, stop ${JSON.stringify(stop)}, max ${maxTokens})`, async () => {
    const opts = { maxTokens, temperature: 0.9, topP: 0.95, seed: 7, stop: [...stop] };
    const want = generate(model, tok, prompt, opts);
    let streamed = '';
    const got = await generateAsync(new DecodeSession(model, tok, promptIds(tok, prompt), opts), (_i, d) => (streamed += d));
    assert.deepEqual(got, want);
    assert.equal(streamed, want.text);
  });
}

test('continuation: the text is what the tokens add to the prompt, so prompt + text reads right', async () => {
  for (const prompt of ['Lily', 'Once upon a time', '']) {
    const ids = promptIds(tok, prompt);
    const plain = await generateAsync(new DecodeSession(model, tok, ids, { maxTokens: 20, temperature: 0 }));
    let streamed = '';
    const cont = await generateAsync(new DecodeSession(model, tok, ids, { maxTokens: 20, temperature: 0, continuation: true }),
      (_i, d) => (streamed += d));
    assert.deepEqual(cont.ids, plain.ids);
    assert.equal(prompt + cont.text, tok.decode([...ids, ...cont.ids]));
    assert.equal(streamed, cont.text);
    assert.equal(cont.text.trimStart(), plain.text.trimStart());
  }
});

test('bytes grow with the length like full attention, and cancel frees them at once', () => {
  const s = new DecodeSession(model, tok, promptIds(tok, 'Once upon'), { maxTokens: 50, temperature: 0 });
  assert.equal(s.bytes(), 0);
  s.prefill();
  for (let i = 0; i < 5; i++) s.step();
  assert.ok(s.length > 5);
  assert.equal(s.bytes(), fullAttentionBytes(model, s.length));
  s.cancel();
  assert.equal(s.bytes(), 0);
  assert.equal(s.stopReason, 'cancelled');
  assert.deepEqual(s.step(), { id: -1, delta: '', done: true });
});

test('an aborted signal stops generateAsync between tokens', async () => {
  const ac = new AbortController();
  let n = 0;
  const s = new DecodeSession(model, tok, [tok.bosId], { maxTokens: 200, temperature: 0 });
  await generateAsync(s, () => { if (++n === 3) ac.abort(); }, ac.signal);
  assert.equal(s.stopReason, 'cancelled');
  assert.equal(s.ids.length, 3);
});

test('bad options throw before any memory is allocated', () => {
  assert.throws(() => new DecodeSession(model, tok, [], {}), /prompt is empty/);
  assert.throws(() => new DecodeSession(model, tok, [1], { maxTokens: -1 }), /maxTokens/);
  assert.throws(() => new DecodeSession(model, tok, [1, 9999], {}), /outside the vocabulary/);
  assert.throws(() => new DecodeSession(model, tok, new Array(513).fill(1), {}), /more than the context/);
});
