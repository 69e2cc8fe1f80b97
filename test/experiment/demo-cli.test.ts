// `npm run demo`'s command line: --help prints the usage and exits 0; an unknown flag, a flag without its value or a
// stray argument is refused with exit 2, the usage and the offending argument, before anything is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../io/tmp.js';

const demo = (...args: string[]): { status: number | null; stdout: string; stderr: string } =>
  spawnSync(process.execPath, ['--import', 'tsx', 'scripts/experiment/demo.ts', ...args], { encoding: 'utf8' });

test('npm run demo -- --help prints the usage with examples', () => {
  const r = demo('--help');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /--train/);
  assert.match(r.stdout, /models\/demo-llama-hh-75/);
  assert.match(r.stdout, /npm run demo -- --train --out runs\/demo-train/);
});

test('npm run demo refuses bad arguments with exit 2, naming them, and writes nothing', () => {
  const out = join(tempDir('demo-cli'), 'run');
  for (const [args, re] of [
    [['--trian', '--out', out], /demo: Unknown option '--trian'/],
    [['--out', out, 'extra'], /demo: Unexpected argument 'extra'/],
    [['--recipe'], /demo: Option '--recipe <value>' argument missing/],
    [['--out', '--train'], /demo: Option '--out' argument is ambiguous/],
  ] as const) {
    const r = demo(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.match(r.stderr, /npm run demo \[-- options\]/, 'the usage follows');
  }
  assert.ok(!existsSync(out), 'nothing was written');
});
