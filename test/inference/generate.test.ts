/** Streaming: the deltas handed to onToken add up to the final text, and never include a stop string. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/io/model-load.js';
import { buildModel } from '../../src/io/build.js';
import { generate } from '../../src/inference/generate.js';

const lm = loadModel(new URL('../../models/stories260K', import.meta.url).pathname);
const model = buildModel(lm);

for (const stop of [[], ['Lily'], ['ball.', 'mom said'], ['zzz-never']]) {
  test(`streamed deltas equal the final text (stop ${JSON.stringify(stop)})`, () => {
    let streamed = '';
    const r = generate(model, lm.tokenizer!, 'Once upon a time', {
      maxTokens: 80, temperature: 0.9, seed: 3, stop, onToken: (_id, d) => (streamed += d),
    });
    assert.equal(streamed, r.text);
    for (const s of stop) assert.ok(!r.text.includes(s), `text must not contain the stop string ${s}`);
    if (stop.length === 0 || stop[0] === 'zzz-never') assert.equal(r.stopReason, r.ids.length === 80 ? 'length' : 'eos');
  });
}

test('a stop string hit ends generation with stopReason "stop"', () => {
  const r = generate(model, lm.tokenizer!, '', { maxTokens: 200, temperature: 0, stop: ['red ball'] });
  assert.equal(r.stopReason, 'stop');
  assert.ok(r.text.endsWith('she saw a big, '), r.text);
});
