#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's built-in test runner (TypeScript through tsx), then the PyTorch package's
// pytest suite (python/tests) when /usr/bin/python3 (or RECURFORMER_PYTHON) can import torch, numpy and pytest
// (Debian's python3-torch and python3-pytest, installed by .ci/run); otherwise one skip line. The last line sums up
// both suites' passed / failed counts.
// Usage: node scripts/run-tests.mjs [filter-substring ...]   (a filter starting with `python`: only the pytest suite)
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

function walk(dir, out) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

/** Runs a command with its output passed through live and kept. */
function tee(cmd, args) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['inherit', 'pipe', 'inherit'], env: { ...process.env, RECURFORMER_QUIET: '1' } });
    let text = '';
    p.stdout.on('data', (d) => {
      process.stdout.write(d);
      text += d.toString();
      if (text.length > 1 << 20) text = text.slice(-(1 << 19)); // only the summary at the end matters
    });
    p.on('close', (code) => resolve({ code: code ?? 1, text }));
  });
}

const filters = process.argv.slice(2);
const pyOnly = filters.length > 0 && filters.every((f) => f.startsWith('python'));
const wantsPython = filters.length === 0 || filters.some((f) => f.startsWith('python'));
const files = pyOnly ? [] : walk('test', []).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0 && !pyOnly) {
  console.error(`run-tests: no test files match ${filters.join(' ')}`);
  process.exit(1);
}

let status = 0;
let tsLine = '';
if (files.length > 0) {
  const ts = await tee(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files]);
  const n = (key) => (new RegExp(`^ℹ ${key} (\\d+)`, 'm').exec(ts.text)?.[1] ?? '?');
  tsLine = `TypeScript ${n('pass')} passed, ${n('fail')} failed`;
  status = ts.code;
}
let pyLine = '';
if (wantsPython) {
  const python = process.env.RECURFORMER_PYTHON || '/usr/bin/python3';
  const probe = spawnSync(python, ['-c', 'import torch, numpy, pytest'], { stdio: 'ignore' });
  if (probe.status !== 0) {
    pyLine = 'pytest skipped';
    console.log(`pytest: skipped: ${python} cannot import torch, numpy and pytest (apt-get install python3-torch python3-pytest)`);
  } else {
    const r = await tee(python, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'python/tests']);
    const last = r.text.trim().split('\n').at(-1) ?? '';
    const num = (re) => Number(re.exec(last)?.[1] ?? 0);
    pyLine = `pytest ${num(/(\d+) passed/)} passed, ${num(/(\d+) failed/) + num(/(\d+) errors?/)} failed`;
    if (r.code !== 0 && status === 0) status = r.code;
  }
}
if (tsLine && pyLine) console.log(`summary: ${tsLine}; ${pyLine}`);
else console.log(`summary: ${tsLine || pyLine}`);
process.exit(status);
