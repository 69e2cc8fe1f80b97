/**
 * The playground in headless Chromium (playwright-core driving Debian's /usr/bin/chromium): send a prompt, see the
 * reply stream in and the cache chart gain points, with no console errors and no request leaving 127.0.0.1; the
 * layout on a 390x844 phone (nothing wider than the screen); dropping old turns, refusing a message that cannot fit
 * and New chat; Stop mid-reply. Screenshots go to test-output/. Skips with a message when Chromium is not installed
 * (test/server/playground-page.test.ts runs the same script without a browser).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { startServer, startSlowServer, type TestServer } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const OUT = fileURLToPath(new URL('../../test-output', import.meta.url));
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install -y chromium) — playground browser test skipped`;

let s: TestServer, slow: TestServer;
let context: BrowserContext;
let profile: string;
const offHost: string[] = [];

before(async () => {
  if (skip) return;
  s = await startServer({ apiKey: 'k1' });
  slow = await startSlowServer(); // decode sleeps 20 ms a token, so Stop lands mid-stream
  const { chromium } = await import('playwright-core');
  profile = mkdtempSync(join(tmpdir(), 'recurformer-chromium-'));
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS });
  // everything stays on loopback: any other request is aborted and recorded
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === 'data:' || u.hostname === '127.0.0.1') return route.continue();
    offHost.push(u.href);
    return route.abort();
  });
});
after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await s?.close();
  await slow?.close();
});

/** A fresh page; its console errors and page errors are collected (`ignore` drops the expected ones). */
async function open(url: string, ignore?: RegExp): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !(ignore && ignore.test(m.text()))) errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForFunction("document.body.dataset.state === 'idle'");
  return { page, errors };
}

const text = async (page: Page, sel: string): Promise<string> => (await page.textContent(sel)) ?? '';
const idle = (page: Page): Promise<unknown> => page.waitForFunction("document.body.dataset.state === 'idle'");

test('playground: a prompt streams a reply and updates the cache chart, without console errors', { skip, timeout: 60_000 }, async () => {
  const { page, errors } = await open(`${s.url}/?api_key=k1`);
  try {
    assert.equal(new URL(page.url()).search, '', 'the key is dropped from the address bar');
    assert.equal(await page.title(), 'stories260K · recurformer playground');
    assert.equal(await page.getAttribute('#max', 'max'), '512', 'max tokens is capped by the model context');
    await page.fill('#max', '60');
    await page.fill('#temp', '0');
    await page.fill('#prompt', 'Once upon a time');
    await page.click('#send');
    // tokens stream: the reply grows while the chart gains points, one per token
    // (browser-side code as strings: the test's TypeScript has no DOM types)
    await page.waitForFunction("Number(document.getElementById('chart').dataset.points) >= 10");
    await idle(page);
    const reply = await page.textContent('[data-testid="reply"]');
    assert.ok(reply && reply.trim().length > 10, `reply: ${reply}`);
    const points = Number(await page.getAttribute('#chart', 'data-points'));
    assert.ok(points >= 10, `${points} chart points`);
    assert.match(await text(page, '#stats'), /memory: full[\s\S]*cache bytes: \d+[\s\S]*full attention: \d+/);
    // the canvas has been drawn on (not blank)
    const inked = await page.evaluate(`(() => {
      const c = document.getElementById('chart');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    })()`) as number;
    assert.ok(inked > 500, `${inked} inked pixels`);
    assert.equal(await text(page, '#err'), '');
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: join(OUT, 'playground.png'), fullPage: true });
    assert.deepEqual(errors, []);
    assert.deepEqual(offHost, []);
  } finally {
    await page.close();
  }
});

test('playground: on a 390x844 phone nothing overflows horizontally', { skip, timeout: 60_000 }, async () => {
  const { page, errors } = await open(`${s.url}/?api_key=k1`);
  try {
    await page.setViewportSize({ width: 390, height: 844 });
    const fits = async (when: string): Promise<void> => {
      const [scroll, inner] = await page.evaluate('[document.documentElement.scrollWidth, innerWidth]') as [number, number];
      assert.ok(scroll <= inner, `${when}: scrollWidth ${scroll} > innerWidth ${inner}`);
      for (const sel of ['#new', '#send', '#stop', '#prompt', '#chart', '#log', '#max', '#system']) {
        const box = (await page.locator(sel).boundingBox())!;
        assert.ok(box.x >= 0 && box.x + box.width <= inner, `${when}: ${sel} spans ${box.x}..${box.x + box.width} of ${inner}`);
      }
    };
    await fits('loaded');
    // one column: the cache panel sits under the chat
    const log = (await page.locator('#log').boundingBox())!, chart = (await page.locator('#chart').boundingBox())!;
    assert.ok(chart.y > log.y + log.height, 'the chart is below the log');
    await page.fill('#max', '20');
    await page.fill('#prompt', `A long word: ${'x'.repeat(200)}`);
    await page.click('#send');
    await idle(page);
    await fits('after a message with a 200-character word');
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: join(OUT, 'playground-phone.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('playground: old turns are dropped with a note, a message that cannot fit is refused, New chat starts over', { skip, timeout: 60_000 }, async () => {
  // the refused message is a 400 response, which Chromium logs as a failed resource load
  const { page, errors } = await open(`${s.url}/?api_key=k1`, /status of 400/);
  const bodies: { role: string; content: string }[][] = [];
  page.on('request', (r) => {
    if (r.url().endsWith('/v1/chat/completions')) bodies.push((JSON.parse(r.postData()!) as { messages: { role: string; content: string }[] }).messages);
  });
  try {
    await page.fill('#max', '128');
    await page.fill('#temp', '0');
    await page.fill('#system', 'Tell a story.');
    const para = (i: number): string => `Message ${i}. Once upon a time there was a little girl named Lily who liked to play in the park. `.repeat(4).trim();
    for (let i = 1; i <= 6 && !(await page.evaluate('document.body.dataset.dropped')); i++) {
      await page.fill('#prompt', para(i));
      await page.click('#send');
      await idle(page);
      assert.equal(await text(page, '#err'), '', `turn ${i}`);
    }
    assert.match(await text(page, '#note'), /^Dropped the oldest \d+ messages .*context of 512 tokens/);
    assert.equal(await page.locator('#log .user').first().getAttribute('class'), 'user dropped');
    const last = bodies.at(-1)!;
    assert.deepEqual(last[0], { role: 'system', content: 'Tell a story.' });
    assert.ok(!last.some((m) => m.content === para(1)), 'the first message is no longer sent');

    const entries = await page.locator('#log > div').count();
    const tooLong = 'word '.repeat(700).trim();
    await page.fill('#prompt', tooLong);
    await page.click('#send');
    await idle(page);
    assert.match(await text(page, '#err'), /^Not sent: this message does not fit the model's context even on its own: the server counted \d+ tokens .*holds 512\. Shorten it\.$/);
    assert.equal(await page.inputValue('#prompt'), tooLong, 'the text is given back to edit');
    assert.equal(await page.locator('#log > div').count(), entries);

    await page.fill('#prompt', 'And then?');
    await page.click('#send');
    await idle(page);
    assert.equal(await text(page, '#err'), '', 'the chat goes on after a refusal');

    await page.click('#new');
    assert.equal(await page.locator('#log > div').count(), 0);
    assert.equal(await text(page, '#note'), '');
    await page.fill('#prompt', 'Hello');
    await page.click('#send');
    await idle(page);
    assert.deepEqual(bodies.at(-1)!.map((m) => m.role), ['system', 'user']);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('playground: Stop ends a streaming reply and the server cancels its session', { skip, timeout: 60_000 }, async () => {
  const { page, errors } = await open(`${slow.url}/`);
  try {
    assert.equal(await page.title(), 'run-7 · recurformer playground');
    await page.fill('#max', '400');
    await page.fill('#temp', '0');
    await page.fill('#prompt', 'Once upon a time');
    await page.click('#send');
    await page.waitForFunction("Number(document.getElementById('chart').dataset.points) >= 3");
    assert.equal(await page.isDisabled('#send'), true);
    await page.click('#stop');
    await idle(page);
    assert.match(await text(page, '#note'), /^Stopped after \d+ tokens?\.$/);
    const reply = await text(page, '[data-testid="reply"]');
    await page.waitForTimeout(300);
    assert.equal(await text(page, '[data-testid="reply"]'), reply, 'nothing more arrives');
    assert.equal(await page.isDisabled('#stop'), true);
    let metrics = '';
    for (let k = 0; k < 100 && !/route="\/v1\/chat\/completions",status="499"\} 1/.test(metrics); k++) {
      await new Promise((r) => setTimeout(r, 20));
      metrics = await (await fetch(`${slow.url}/metrics`)).text();
    }
    assert.match(metrics, /route="\/v1\/chat\/completions",status="499"\} 1/, 'the session was cancelled (client gone)');
    assert.equal(slow.server.context.scheduler.activeCount, 0);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});
