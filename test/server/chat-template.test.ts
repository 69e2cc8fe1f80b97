/** Chat templates: the documented default, a model's own Jinja template (tokenizer_config.json or GGUF), BOS handling. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gv, writeGguf } from '../../src/io/gguf-write.js';
import { ApiError } from '../../src/server/errors.js';
import { loadChatTemplate, makeChatTemplate } from '../../src/server/chat-template.js';
import { MODEL_DIR, runCliChild } from './helpers.js';

const msgs = [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' },
  { role: 'user', content: 'A story?' }];

test('stories260K has no template: the documented default renders the conversation', () => {
  const t = loadChatTemplate(MODEL_DIR);
  assert.equal(t.source, 'default');
  assert.equal(t.render(msgs), 'Be kind.\n\nUser: Hi\nAssistant: Hello\nUser: A story?\nAssistant:');
});

test("a folder's chat_template is used, its bos_token rendered as the template writes it", () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-tpl-'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({
    bos_token: '<s>', eos_token: { content: '</s>' },
    chat_template: "{{ bos_token }}{% for m in messages %}[{{ m.role|upper }}] {{ m.content }}{{ eos_token }}{% endfor %}"
      + "{% if add_generation_prompt %}[ASSISTANT]{% endif %}",
  }));
  const t = loadChatTemplate(dir);
  assert.equal(t.source, join(dir, 'tokenizer_config.json'));
  assert.equal(t.render(msgs.slice(1, 2)), '<s>[USER] Hi</s>[ASSISTANT]');
});

test('a GGUF tokenizer.chat_template is used', () => {
  const path = join(mkdtempSync(join(tmpdir(), 'rf-tpl-')), 'm.gguf');
  writeGguf(path, new Map([['tokenizer.chat_template', gv.str('{% for m in messages %}<{{ m.content }}>{% endfor %}')]]), []);
  assert.equal(loadChatTemplate(path).render(msgs.slice(1, 2)), '<Hi>');
});

test('a template that raises is a 400 naming messages', () => {
  const t = makeChatTemplate("{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok", 'x');
  assert.equal(t.render(msgs.slice(1)), 'ok');
  assert.throws(() => t.render(msgs), (e: unknown) => e instanceof ApiError && e.status === 400 && e.param === 'messages');
});

test('serve on a port in use fails with exit code 1 and a hint', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  try {
    const port = (blocker.address() as AddressInfo).port;
    const r = await runCliChild(['serve', '--port', String(port)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)[\s\S]*--port 0/);
  } finally {
    blocker.close();
  }
});

test('serve rejects a bad flag with exit code 1 before listening', async () => {
  const r = await runCliChild(['serve', '--port', 'http']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--port = http must be an integer/);
});
