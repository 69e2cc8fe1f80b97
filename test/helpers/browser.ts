/**
 * Headless Chromium for the report tests: Debian's chromium package driven by playwright-core (imported dynamically
 * so the suite typechecks and runs without it; tests skip when either is missing).
 */
import { existsSync } from 'node:fs';

/** RF_CHROMIUM overrides the browser path (e.g. to check the skip path). */
export const CHROMIUM = process.env.RF_CHROMIUM ?? '/usr/bin/chromium';
export const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** The few playwright-core calls used here (imported dynamically so the suite typechecks without the package). */
export interface Page {
  on(ev: 'console', f: (m: { type(): string; text(): string }) => void): void;
  on(ev: 'pageerror', f: (e: Error) => void): void;
  on(ev: 'request', f: (r: { url(): string }) => void): void;
  goto(url: string): Promise<unknown>;
  evaluate<R>(f: () => R): Promise<R>;
  screenshot(o: { path: string; fullPage: boolean }): Promise<unknown>;
}
export interface Context { newPage(): Promise<Page>; close(): Promise<void> }
export interface Playwright { chromium: { launchPersistentContext(dir: string, o: object): Promise<Context> } }

/** playwright-core with Debian's Chromium present, or null after marking the test skipped with what to install. */
export async function browserOrSkip(t: { skip(message: string): void }): Promise<Playwright | null> {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium) to run this test`);
    return null;
  }
  const pw = await playwright();
  if (!pw) t.skip('playwright-core is not installed: run npm install');
  return pw;
}

export async function playwright(): Promise<Playwright | null> {
  try {
    const name = 'playwright-core';
    return (await import(name)) as Playwright;
  } catch {
    return null;
  }
}
