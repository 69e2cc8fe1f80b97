/**
 * The playground in headless Chromium (playwright-core driving Debian's /usr/bin/chromium): send a prompt, see the
 * reply stream in and the cache chart gain points, with no console errors and no request leaving 127.0.0.1.
 * A screenshot goes to test-output/playground.png. Skips with a message when Chromium is not installed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, type TestServer } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
const OUT = fileURLToPath(new URL('../../test-output', import.meta.url));
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install -y chromium) — playground browser test skipped`;

let s: TestServer;
before(async () => {
  if (!skip) s = await startServer({ apiKey: 'k1' });
});
after(() => s?.close());

test('playground: a prompt streams a reply and updates the cache chart, without console errors', { skip, timeout: 60_000 }, async () => {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'recurformer-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    const errors: string[] = [];
    const offHost: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    // everything stays on loopback: any other request is aborted and recorded
    await context.route('**/*', (route) => {
      const u = new URL(route.request().url());
      if (u.protocol === 'data:' || u.hostname === '127.0.0.1') return route.continue();
      offHost.push(u.href);
      return route.abort();
    });
    await page.goto(`${s.url}/?api_key=k1`);
    assert.equal(new URL(page.url()).search, '', 'the key is dropped from the address bar');
    await page.fill('#max', '60');
    await page.fill('#temp', '0');
    await page.fill('#prompt', 'Once upon a time');
    await page.click('#send');
    // tokens stream: the reply grows while the chart gains points, one per token
    // (browser-side code as strings: the test's TypeScript has no DOM types)
    await page.waitForFunction("Number(document.getElementById('chart').dataset.points) >= 10");
    await page.waitForFunction("!document.getElementById('send').disabled");
    const reply = await page.textContent('[data-testid="reply"]');
    assert.ok(reply && reply.trim().length > 10, `reply: ${reply}`);
    const points = Number(await page.getAttribute('#chart', 'data-points'));
    assert.ok(points >= 10, `${points} chart points`);
    assert.match((await page.textContent('#stats'))!, /memory: full[\s\S]*cache bytes: \d+[\s\S]*full attention: \d+/);
    // the canvas has been drawn on (not blank)
    const inked = await page.evaluate(`(() => {
      const c = document.getElementById('chart');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    })()`) as number;
    assert.ok(inked > 500, `${inked} inked pixels`);
    assert.equal(await page.textContent('#err'), '');
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: join(OUT, 'playground.png'), fullPage: true });
    assert.deepEqual(errors, []);
    assert.deepEqual(offHost, []);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
