/**
 * The playground page without a browser: its HTML (viewport, title, controls, no hard-coded max-tokens cap), that
 * its inline script compiles, and the context policy (./src/server/playground/policy.ts) run in a VM exactly as the
 * page inlines it. test/server/playground-page.test.ts drives the whole script against a live server with a stub
 * DOM; test/server/playground.test.ts does it in Chromium.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import vm from 'node:vm';
import { playgroundHtml } from '../../src/server/playground.js';
import { POLICY_JS } from '../../src/server/playground/policy.js';

/** The attributes of the element with this id (a small parse: attribute values are quoted, as the page writes them). */
function element(html: string, id: string): { tag: string; attrs: Record<string, string> } {
  const m = new RegExp(`<([a-z0-9]+)\\s([^>]*\\bid="${id}"[^>]*)>`).exec(html);
  assert.ok(m, `no element #${id}`);
  const attrs: Record<string, string> = {};
  for (const a of m[2]!.matchAll(/([a-z-]+)(?:="([^"]*)")?/g)) attrs[a[1]!] = a[2] ?? '';
  return { tag: m[1]!, attrs };
}

const scripts = (html: string): string[] => [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);

test('playground html: viewport meta, the model id in the title and heading, escaped', () => {
  const html = playgroundHtml('run-7');
  assert.match(html, /<meta name="viewport" content="width=device-width,initial-scale=1">/);
  assert.match(html, /<title>run-7 · recurformer playground<\/title>/);
  assert.match(html, /<span id="model">run-7<\/span>/);
  assert.equal(element(html, 'model').tag, 'span');
  const evil = playgroundHtml('"><script>alert(1)</script>');
  assert.equal(scripts(evil).length, 1, 'the id cannot open a script');
  assert.match(evil, /<title>&quot;&gt;&lt;script&gt;alert\(1\)&lt;\/script&gt; · recurformer playground<\/title>/);
  assert.match(evil, /data-model="&quot;&gt;&lt;script&gt;/);
});

test('playground html: New chat, Send and Stop; Stop starts disabled; max tokens has no fixed cap', () => {
  const html = playgroundHtml('stories260K');
  assert.equal(element(html, 'new').tag, 'button');
  assert.equal(element(html, 'new').attrs.type, 'button');
  assert.equal(element(html, 'send').attrs.type, 'submit');
  const stop = element(html, 'stop');
  assert.equal(stop.tag, 'button');
  assert.equal(stop.attrs.type, 'button', 'Stop must not submit the form');
  assert.ok('disabled' in stop.attrs);
  assert.ok('disabled' in element(html, 'send').attrs, 'Send waits for /v1/models');
  const max = element(html, 'max');
  assert.equal(max.attrs.type, 'number');
  assert.equal(max.attrs.max, undefined, 'the cap comes from the model context (/v1/models), not the page');
  assert.equal(element(html, 'system').tag, 'textarea');
  assert.equal(element(html, 'note').attrs.role, 'status');
});

test('playground html: responsive rules (one column on a phone, nothing wider than the screen)', () => {
  const html = playgroundHtml('stories260K');
  const css = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
  assert.match(css, /@media \(max-width:\d+px\)\{main\{grid-template-columns:minmax\(0,1fr\)/);
  assert.match(css, /canvas\{[^}]*width:100%[^}]*height:auto/);
  assert.match(css, /overflow-wrap:anywhere/);
  // no fixed or minimum width wider than a 390px phone anywhere in the sheet (max-width is fine)
  const widths = [...css.matchAll(/(?:^|[;{])(?:min-)?width:(\d+)px/g)].map((m) => Number(m[1]));
  assert.ok(widths.length > 0);
  assert.deepEqual(widths.filter((w) => w > 390), []);
});

test('playground html: the inline script compiles', () => {
  const [script] = scripts(playgroundHtml('stories260K'));
  assert.ok(script && script.includes('function fitConversation'));
  assert.doesNotThrow(() => new vm.Script(script!, { filename: 'playground.js' }));
});

interface Msg { role: string; content: string; tokens?: number }
interface Policy {
  messageTokens(m: Msg, c: Calib): number;
  conversationTokens(ms: Msg[], c: Calib): number;
  dropOldestTurn(ms: Msg[]): Msg[];
  replyReserve(context: number, max: number): number;
  fitConversation(ms: Msg[], context: number, max: number, c: Calib): { keep: Msg[]; dropped: Msg[]; estimate: number; budget: number; fits: boolean };
  calibrate(sent: Msg[], promptTokens: number, c: Calib): void;
}
interface Calib { rate: number; perMessage: number }

const policy = vm.runInNewContext(`${POLICY_JS}
({ messageTokens, conversationTokens, dropOldestTurn, replyReserve, fitConversation, calibrate })`) as Policy;
/** Plain copies (the VM's arrays have another realm's prototype). */
const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const roles = (ms: Msg[]): string => ms.map((m) => `${m.role[0]}:${m.content}`).join(' ');

/** A conversation of `turns` user/assistant pairs of `tokens` counted tokens each, then a new user message. */
function convo(turns: number, tokens: number, system = true): Msg[] {
  const ms: Msg[] = system ? [{ role: 'system', content: 'sys', tokens: 10 }] : [];
  for (let i = 1; i <= turns; i++) ms.push({ role: 'user', content: `u${i}`, tokens }, { role: 'assistant', content: `a${i}`, tokens });
  ms.push({ role: 'user', content: 'new', tokens });
  return ms;
}

test('context policy: drops the oldest turns first, keeps the system message and the new message', () => {
  const calib = { rate: 0.5, perMessage: 4 };
  // 10 + 7 x 50 = 360 tokens; context 512 with 128 for the reply leaves 384: all fit
  let r = policy.fitConversation(convo(3, 50), 512, 128, calib);
  assert.equal(r.dropped.length, 0);
  assert.equal(r.fits, true);
  assert.equal(r.budget, 384);
  // a 200-token reply reserve leaves 312: the oldest turn (u1, a1) goes, 260 tokens remain
  r = policy.fitConversation(convo(3, 50), 512, 200, calib);
  assert.equal(roles(plain(r.dropped)), 'u:u1 a:a1');
  assert.equal(roles(plain(r.keep)), 's:sys u:u2 a:a2 u:u3 a:a3 u:new');
  assert.equal(r.estimate, 260);
  // the reserve is at most half the context: max tokens 512 on a 512 context still leaves 256 for the prompt
  assert.equal(policy.replyReserve(512, 512), 256);
  r = policy.fitConversation(convo(3, 50), 512, 512, calib);
  assert.equal(roles(plain(r.keep)), 's:sys u:u3 a:a3 u:new');
  assert.equal(r.dropped.length, 4);
  // the input is not changed
  const input = convo(3, 50);
  policy.fitConversation(input, 512, 512, calib);
  assert.equal(input.length, 8);
});

test('context policy: a last message too long even alone is reported, never dropped', () => {
  const calib = { rate: 0.5, perMessage: 4 };
  const ms = convo(2, 50);
  ms[ms.length - 1]!.tokens = 600;
  const r = policy.fitConversation(ms, 512, 128, calib);
  assert.equal(r.fits, false);
  assert.equal(roles(plain(r.keep)), 's:sys u:new', 'every older turn goes, the system message and the message stay');
  assert.equal(r.estimate, 610);
  // nothing left to drop
  const keep = plain(r.keep);
  assert.deepEqual(plain(policy.dropOldestTurn(keep)), []);
  assert.equal(keep.length, 2);
  // without a system message
  const bare = convo(1, 50, false);
  bare[bare.length - 1]!.tokens = 600;
  assert.equal(roles(plain(policy.fitConversation(bare, 512, 128, calib).keep)), 'u:new');
});

test('context policy: a turn goes whole (a user message with its replies), never leaving a reply first', () => {
  const ms: Msg[] = [
    { role: 'user', content: 'u1' }, { role: 'assistant', content: 'a1' }, { role: 'assistant', content: 'a1b' },
    { role: 'user', content: 'u2' }, { role: 'assistant', content: 'a2' }, { role: 'user', content: 'new' },
  ];
  assert.equal(roles(plain(policy.dropOldestTurn(ms))), 'u:u1 a:a1 a:a1b');
  assert.equal(roles(ms), 'u:u2 a:a2 u:new');
  assert.equal(roles(plain(policy.dropOldestTurn(ms))), 'u:u2 a:a2');
  assert.equal(roles(plain(policy.dropOldestTurn(ms))), '');
});

test('context policy: estimates learn from the server counts', () => {
  const calib = { rate: 0.5, perMessage: 4 };
  const sys: Msg = { role: 'system', content: 'x'.repeat(40) };
  const u1: Msg = { role: 'user', content: 'y'.repeat(160) };
  assert.equal(policy.messageTokens(u1, calib), 84, 'uncounted: 0.5 per character + 4');
  // the server counted 70 prompt tokens for both: they share it by length, and the rate follows
  policy.calibrate([sys, u1], 70, calib);
  assert.equal(sys.tokens! + u1.tokens!, 70);
  assert.ok(u1.tokens! > 3 * sys.tokens!, `${sys.tokens} / ${u1.tokens}`);
  assert.ok(Math.abs(calib.rate - 62 / 200) < 1e-9, `rate ${calib.rate}`);
  // counted messages keep their counts; a new message takes what is left
  const a1: Msg = { role: 'assistant', content: 'z'.repeat(100), tokens: 30 };
  const u2: Msg = { role: 'user', content: 'w'.repeat(300) };
  policy.calibrate([sys, u1, a1, u2], 200, calib);
  assert.equal(u2.tokens, 100);
  assert.equal(policy.conversationTokens([sys, u1, a1, u2], calib), 200);
  // an error's count for a message that does not fit: it is known exactly afterwards
  const big: Msg = { role: 'user', content: 'v'.repeat(2000) };
  policy.calibrate([sys, big], 900, calib);
  assert.equal(big.tokens, 900 - sys.tokens!);
  assert.equal(policy.fitConversation([sys, u1, a1, u2, big], 512, 128, calib).fits, false);
});
