/**
 * The playground's whole script against a live server, without a browser: the page's inline script runs in a VM
 * over a stub DOM built from the page's own HTML (ids, initial values), with Node's fetch (streams, AbortSignal)
 * pointed at the server. Covers the model id and context read from /v1/models, the max-tokens cap, dropping the
 * oldest turns with a note, refusing a message that cannot fit, New chat, and Stop (which must cancel the session on
 * the server). test/server/playground.test.ts checks the same in Chromium, with the layout.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import vm from 'node:vm';
import { playgroundHtml } from '../../src/server/playground.js';
import { startServer, startSlowServer, type TestServer } from './helpers.js';

const decodeEntities = (s: string): string =>
  s.replace(/&(quot|lt|gt|#39|amp);/g, (_m, e: string) => ({ quot: '"', lt: '<', gt: '>', '#39': "'", amp: '&' })[e]!);

type Listener = (ev: { preventDefault(): void }) => unknown;

/** Just enough of an element for the page script. */
class StubElement {
  children: StubElement[] = [];
  parent: StubElement | null = null;
  dataset: Record<string, string> = {};
  className = '';
  readonly classes = new Set<string>();
  readonly classList = { add: (c: string) => this.classes.add(c), contains: (c: string) => this.classes.has(c) };
  value = '';
  disabled = false;
  max = '';
  scrollTop = 0;
  width = 360;
  height = 220;
  private text = '';
  readonly listeners = new Map<string, Listener>();

  constructor(readonly tag: string) {}
  get textContent(): string {
    return this.text + this.children.map((c) => c.textContent).join('');
  }
  set textContent(v: string) {
    this.text = v;
    this.children = [];
  }
  appendChild(c: StubElement): StubElement {
    c.parent = this;
    this.children.push(c);
    return c;
  }
  remove(): void {
    if (this.parent) this.parent.children = this.parent.children.filter((x) => x !== this);
    this.parent = null;
  }
  addEventListener(type: string, fn: Listener): void {
    this.listeners.set(type, fn);
  }
  focus(): void {}
  requestSubmit(): unknown {
    return this.listeners.get('submit')?.({ preventDefault() {} });
  }
  getContext(): unknown {
    return new Proxy({}, { get: () => () => undefined, set: () => true });
  }
}

interface Sent { max_tokens: number; messages: { role: string; content: string }[] }

/** The page loaded from `html` and run against `base`: its elements, the chat bodies it posted, and actions. */
class StubPage {
  readonly els = new Map<string, StubElement>();
  readonly body = new StubElement('body');
  readonly doc = { title: '', body: this.body, getElementById: (id: string) => this.els.get(id) ?? null,
    createElement: (tag: string) => new StubElement(tag) };
  readonly sent: Sent[] = [];
  readonly statuses: number[] = [];
  replacedUrl = false;

  /** `models`: what /v1/models answers instead of the server (to stand in for another model). */
  constructor(html: string, base: string, search = '', models?: object) {
    for (const m of html.matchAll(/<([a-z0-9]+)\s([^>]*\bid="([^"]+)"[^>]*)>/g)) {
      const el = new StubElement(m[1]!);
      const attrs = Object.fromEntries([...m[2]!.matchAll(/([a-z-]+)(?:="([^"]*)")?/g)].map((a) => [a[1]!, decodeEntities(a[2] ?? '')]));
      el.value = attrs.value ?? '';
      el.max = attrs.max ?? '';
      el.disabled = 'disabled' in attrs;
      for (const [k, v] of Object.entries(attrs)) if (k.startsWith('data-')) el.dataset[k.slice(5)] = v;
      this.els.set(m[3]!, el);
    }
    const bodyTag = /<body ([^>]*)>/.exec(html)![1]!;
    for (const a of bodyTag.matchAll(/data-([a-z]+)="([^"]*)"/g)) this.body.dataset[a[1]!] = decodeEntities(a[2]!);
    const fetchStub = async (path: string, init: RequestInit = {}): Promise<Response> => {
      if (path === '/v1/models' && models) return Response.json(models);
      if (path === '/v1/chat/completions') this.sent.push(JSON.parse(String(init.body)) as Sent);
      const res = await fetch(base + path, init);
      if (path === '/v1/chat/completions') this.statuses.push(res.status);
      return res;
    };
    const context = vm.createContext({
      document: this.doc, fetch: fetchStub, AbortController, TextDecoder, URLSearchParams, performance, console,
      location: { search, pathname: '/' },
      history: { replaceState: () => (this.replacedUrl = true) },
    });
    vm.runInContext(/<script>([\s\S]*?)<\/script>/.exec(html)![1]!, context, { filename: 'playground.js' });
  }

  el(id: string): StubElement {
    return this.els.get(id)!;
  }
  async ready(): Promise<void> {
    for (let i = 0; i < 500 && this.body.dataset.state !== 'idle'; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(this.body.dataset.state, 'idle', 'the page loaded the model');
  }
  /** Types a message and sends it; resolves when the page is done with it. */
  send(text: string): Promise<unknown> {
    this.el('prompt').value = text;
    return Promise.resolve(this.el('form').requestSubmit());
  }
  click(id: string): unknown {
    return this.el(id).listeners.get('click')!({ preventDefault() {} });
  }
  /** The log's entries as "class: text". */
  log(): string[] {
    return this.el('log').children.map((c) => `${[c.className, ...c.classes].join('.')}: ${c.textContent}`);
  }
}

let s: TestServer, slow: TestServer;
let html: string;
before(async () => {
  s = await startServer({ apiKey: 'k1' });
  html = await (await fetch(`${s.url}/?api_key=k1`)).text();
  slow = await startSlowServer(); // decode sleeps 20 ms a token, so Stop lands mid-stream
});
after(async () => {
  await s?.close();
  await slow?.close();
});

test('playground page: title and max-tokens cap from /v1/models; the key leaves the address bar', async () => {
  const page = new StubPage(html, s.url, '?api_key=k1');
  await page.ready();
  assert.equal(page.doc.title, 'stories260K · recurformer playground');
  assert.equal(page.el('model').textContent, 'stories260K');
  assert.equal(page.el('max').max, '512', 'capped by the context /v1/models reports');
  assert.match(page.el('ctx').textContent, /512 tokens/);
  assert.equal(page.el('err').textContent, '');
  assert.equal(page.el('send').disabled, false);
  assert.equal(page.el('stop').disabled, true);
  assert.ok(page.replacedUrl);
  // a value over the context is sent as the context
  page.el('max').value = '5000';
  page.el('temp').value = '0';
  await page.send('Once upon a time');
  assert.equal(page.sent.at(-1)!.max_tokens, 512);
  assert.equal(page.el('max').value, '512');
  assert.equal(page.el('err').textContent, '');
  assert.ok(page.log()[1]!.length > 'assistant: '.length + 5, page.log().join('\n'));

  const other = new StubPage(playgroundHtml('run-7'), slow.url);
  await other.ready();
  assert.equal(other.doc.title, 'run-7 · recurformer playground');

  // another model's context: the cap follows it, and the title shows the id the server reports
  const big = new StubPage(playgroundHtml('model'), s.url, '', {
    object: 'list', data: [{ id: 'demo-run', object: 'model', created: 0, owned_by: 'recurformer', context_length: 2048 }],
  });
  await big.ready();
  assert.equal(big.el('max').max, '2048');
  assert.equal(big.doc.title, 'demo-run · recurformer playground');
  assert.equal(big.el('model').textContent, 'demo-run');
});

test('playground page: a long conversation drops its oldest turns with a note, keeps the system message, and refuses what cannot fit', async () => {
  const page = new StubPage(html, s.url, '?api_key=k1');
  await page.ready();
  page.el('max').value = '128';
  page.el('temp').value = '0';
  page.el('system').value = 'Tell a story.';
  const para = (i: number): string => `Message ${i}. Once upon a time there was a little girl named Lily who liked to play in the park. `.repeat(4).trim();
  let i = 1;
  for (; i <= 8 && !page.body.dataset.dropped; i++) {
    await page.send(para(i));
    assert.equal(page.el('err').textContent, '', `turn ${i}`);
  }
  assert.ok(Number(page.body.dataset.dropped) >= 2, `dropped ${page.body.dataset.dropped} after ${i - 1} turns`);
  const note = page.el('note').textContent;
  assert.match(note, /^Dropped the oldest \d+ messages .*context of 512 tokens/);
  const last = page.sent.at(-1)!;
  assert.equal(last.messages[0]!.role, 'system');
  assert.equal(last.messages[0]!.content, 'Tell a story.');
  assert.equal(last.messages[1]!.role, 'user', 'a kept conversation starts with a user turn');
  assert.ok(!last.messages.some((m) => m.content === para(1)), 'the first message was dropped');
  assert.equal(last.messages.at(-1)!.content, para(i - 1));
  assert.ok(page.log()[0]!.startsWith('user.dropped:'), page.log()[0]);
  assert.ok(page.statuses.every((st) => st === 200 || st === 400));
  assert.equal(page.statuses.at(-1), 200);

  // a message longer than the whole context: refused with the server's count, given back to edit, nothing lost
  const logBefore = page.log().length;
  const tooLong = 'word '.repeat(700).trim();
  await page.send(tooLong);
  assert.match(page.el('err').textContent, /^Not sent: this message does not fit the model's context even on its own: the server counted \d{4} tokens .*holds 512/);
  assert.equal(page.el('prompt').value, tooLong);
  assert.equal(page.log().length, logBefore);
  // and the chat goes on: the next message is sent with the conversation as it was
  const kept = page.sent.at(-2)!.messages.length;
  await page.send('And then?');
  assert.equal(page.el('err').textContent, '');
  assert.equal(page.statuses.at(-1), 200);
  assert.ok(page.sent.at(-1)!.messages.some((m) => m.content === para(i - 1)));
  assert.ok(page.sent.at(-1)!.messages.length >= Math.min(kept, 3));

  // New chat: an empty log and a conversation of the system message and the new message
  page.click('new');
  assert.deepEqual(page.log(), []);
  assert.equal(page.el('note').textContent, '');
  assert.equal(page.el('err').textContent, '');
  await page.send('Hello');
  assert.deepEqual(page.sent.at(-1)!.messages.map((m) => m.role), ['system', 'user']);
});

test('playground page: when the estimate is too low, the server\'s count drops another turn and the message goes', async () => {
  const page = new StubPage(html, s.url, '?api_key=k1');
  await page.ready();
  page.el('max').value = '128';
  page.el('temp').value = '0';
  // plain words teach about 0.3 tokens per character; "zq" pairs take one token per character (465 for this one)
  await page.send('the '.repeat(50).trim());
  const odd = 'zq'.repeat(225);
  await page.send(odd);
  assert.equal(page.el('err').textContent, '');
  assert.deepEqual(page.statuses, [200, 400, 200], 'refused once with the exact count, then sent without the oldest turn');
  assert.deepEqual(page.sent.at(-1)!.messages.map((m) => m.content), [odd]);
  assert.match(page.el('note').textContent, /^Dropped the oldest 2 messages/);
  assert.deepEqual(page.log().map((l) => l.split(':')[0]), ['user.dropped', 'assistant.dropped', 'user', 'assistant']);
});

test('playground page: Stop ends the reply, cancels the session on the server, and the chat goes on', { timeout: 60_000 }, async () => {
  const page = new StubPage(playgroundHtml('run-7'), slow.url);
  await page.ready();
  page.el('max').value = '400';
  page.el('temp').value = '0';
  const sending = page.send('Once upon a time');
  for (let k = 0; k < 1000 && Number(page.el('chart').dataset.points) < 3; k++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(page.body.dataset.state, 'streaming');
  assert.equal(page.el('stop').disabled, false);
  page.click('stop');
  await sending;
  assert.equal(page.body.dataset.state, 'idle');
  assert.equal(page.el('send').disabled, false);
  assert.equal(page.el('stop').disabled, true);
  assert.match(page.el('note').textContent, /^Stopped after \d+ tokens?\.$/);
  const reply = page.log()[1]!;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(page.log()[1], reply, 'nothing more arrives');
  // the server cancelled the session: the request ends as 499 (client gone) and no cache is held
  let metrics = '';
  for (let k = 0; k < 100 && !/route="\/v1\/chat\/completions",status="499"\} 1/.test(metrics); k++) {
    await new Promise((r) => setTimeout(r, 20));
    metrics = await (await fetch(`${slow.url}/metrics`)).text();
  }
  assert.match(metrics, /route="\/v1\/chat\/completions",status="499"\} 1/);
  assert.equal(slow.server.context.scheduler.activeCount, 0);
  // the partial reply stays in the conversation
  page.el('max').value = '4';
  await page.send('And then?');
  assert.equal(page.el('err').textContent, '');
  assert.deepEqual(page.sent.at(-1)!.messages.map((m) => m.role), ['user', 'assistant', 'user']);
});
