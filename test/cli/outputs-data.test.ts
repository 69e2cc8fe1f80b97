/**
 * CLI hardening: output paths are checked (and missing folders created) before the work starts, and a path that
 * cannot be written is a typed error naming it; every command reads --data the way train does (a file, a .jsonl
 * file's text field, a folder of them) and warns when it is not text; RECURFORMER_THREADS is checked before the
 * native pool starts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EvalRecord } from '../../src/eval/record.js';
import type { PplResult } from '../../src/eval/perplexity.js';
import { outputError, writingTo } from '../../src/cli/output.js';
import { notTextShare } from '../../src/cli/text-data.js';
import { checkThreadsEnv, maxThreads } from '../../src/tensor/native.js';
import { ArgumentError, BackendError } from '../../src/tensor/errors.js';
import { fakeAnalysis, runCli } from '../helpers/cli.js';

const STORIES = readFileSync('data/tinystories-valid-excerpt/tinystories_val.txt', 'utf8');
let dir = '', text = '', file = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rf-harden-'));
  text = join(dir, 'text.txt');
  writeFileSync(text, STORIES.slice(0, 1500));
  file = join(dir, 'a-file');
  writeFileSync(file, 'not a folder');
});

after(() => rmSync(dir, { recursive: true, force: true }));

const PPL = ['eval', 'ppl', '--ctx', '64'];

async function ppl(data: string, ...more: string[]): Promise<EvalRecord<PplResult>> {
  const r = await runCli([...PPL, '--data', data, '--json', ...more]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as EvalRecord<PplResult>;
}

test('eval --out into folders that do not exist yet creates them (the README\'s runs/x.json)', async () => {
  const out = join(dir, 'runs', 'deeper', 'ppl.json');
  const rec = await ppl(text, '--out', out);
  assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), rec);
  const html = join(dir, 'reports', 'page.html');
  const r = await runCli(['eval', 'report', out, '--out', html]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(html));
});

test('an --out that cannot be written is a typed error naming it, before any work', async () => {
  for (const out of [join(file, 'x.json'), '/dev/null/x.json']) {
    const r = await runCli([...PPL, '--data', text, '--out', out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`eval ppl: --out cannot write ${out.replace(/[.\\/]/g, '\\$&')}: a part of the path is a file`));
    assert.equal(r.stdout, '', 'no result was computed');
  }
  const folder = await runCli([...PPL, '--data', text, '--out', dir]);
  assert.match(folder.stderr, /--out .* is a folder/);
  const an = await runCli(['analyze', '--data', text, '--out', file]);
  assert.equal(an.code, 1);
  assert.match(an.stderr, /analyze: --out .*a-file is a file, not a folder/);
  const ex = await runCli(['export', '--out', join(file, 'hf')]);
  assert.match(ex.stderr, /export: --out cannot write .*a-file\/hf: a part of the path is a file/);
  const rep = await runCli(['eval', 'report', 'nope.json', '--out', join(file, 'r.html')]);
  assert.match(rep.stderr, /eval report: --out cannot write/);
});

const isRoot = process.getuid?.() === 0;
test('a read-only --out folder is a typed error (EACCES), not a stack trace', {
  skip: isRoot ? 'running as root: chmod does not stop root from writing' : false,
}, async () => {
  const ro = join(dir, 'read-only');
  mkdirSync(ro);
  chmodSync(ro, 0o500);
  try {
    const r = await runCli([...PPL, '--data', text, '--out', join(ro, 'x.json')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--out cannot write .*read-only\/x\.json: permission denied \(EACCES\)/);
  } finally {
    chmodSync(ro, 0o700);
  }
});

test('a disk that fills up during a write: a typed error naming the output, not the temp file', () => {
  const full = (): never => {
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write', path: 'runs/.x.json.1.tmp' });
  };
  assert.throws(() => writingTo('eval ppl', '--out', 'runs/x.json', full),
    (e: unknown) => e instanceof ArgumentError && /^eval ppl: --out cannot write runs\/x\.json: no space is left on the device \(ENOSPC\)/.test(e.message));
  const other = new Error('a bug');
  assert.equal(outputError('x', '--out', 'p', other), other, 'errors that are not about the file system pass through');
});

test('--data: a folder and a .jsonl file read as train reads them (documents joined by blank lines)', async () => {
  const docs = [STORIES.slice(0, 700), STORIES.slice(700, 1300), STORIES.slice(1300, 1900)];
  const jsonl = join(dir, 'docs.jsonl');
  writeFileSync(jsonl, `${docs.map((t) => JSON.stringify({ text: t, id: 1 })).join('\n')}\n`);
  const joined = join(dir, 'joined.txt');
  writeFileSync(joined, docs.join('\n\n'));
  const byText = await ppl(joined);
  assert.deepEqual((await ppl(jsonl)).result, byText.result, 'the text field, not the raw JSON');
  const folder = join(dir, 'corpus');
  mkdirSync(join(folder, 'sub'), { recursive: true });
  writeFileSync(join(folder, 'a.txt'), docs[0]!);
  writeFileSync(join(folder, 'sub', 'b.jsonl'), `${JSON.stringify({ body: docs[1] })}\n${JSON.stringify({ body: docs[2] })}\n`);
  writeFileSync(join(folder, 'ignored.bin'), 'x');
  assert.deepEqual((await ppl(folder, '--text-key', 'body')).result, byText.result);
  const noKey = await runCli([...PPL, '--data', folder]);
  assert.match(noKey.stderr, /b\.jsonl: line 1 has no string field "text"/);
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  assert.match((await runCli([...PPL, '--data', empty])).stderr, /holds no \.txt, \.md or \.jsonl files/);
  const missing = await runCli([...PPL, '--data', join(dir, 'missing.txt')]);
  assert.match(missing.stderr, /eval ppl: --data .*missing\.txt does not exist/);
});

test('analyze, eval agree, the needle haystack and convert take a folder too', async () => {
  const folder = join(dir, 'texts');
  mkdirSync(folder);
  writeFileSync(join(folder, 'a.txt'), STORIES.slice(0, 6000));
  writeFileSync(join(folder, 'b.txt'), STORIES.slice(6000, 12000));
  const an = await runCli(['analyze', '--data', folder, '--samples', '1', '--seq', '32', '--windows', '4', '--out', join(dir, 'an'), '--json']);
  assert.equal(an.code, 0, an.stderr);
  const ag = await runCli(['eval', 'agree', '--teacher', 'models/stories260K', '--data', folder, '--ctx', '64', '--max-tokens', '64', '--json']);
  assert.equal(ag.code, 0, ag.stderr);
  const nd = await runCli(['eval', 'needle', '--haystack', folder, '--lengths', '200', '--depths', '0.5', '--samples', '1', '--json']);
  assert.equal(nd.code, 0, nd.stderr);
  const a = join(dir, 'analysis.json');
  writeFileSync(a, JSON.stringify(fakeAnalysis()));
  const cv = await runCli(['convert', '--analysis', a, '--budget', '0.25', '--data', folder, '--calib-tokens', '64', '--out', join(dir, 'conv'), '--json']);
  assert.equal(cv.code, 0, cv.stderr);
  assert.equal((JSON.parse(cv.stdout) as { calibrated: boolean }).calibrated, true);
  assert.equal(cv.stderr, '');
  // --calib is the old name: it still works, with a warning; both at once are refused
  const old = await runCli(['convert', '--analysis', a, '--budget', '0.25', '--calib', folder, '--calib-tokens', '64', '--out', join(dir, 'conv-old'), '--json']);
  assert.equal(old.code, 0, old.stderr);
  assert.match(old.stderr, /warning: --calib is deprecated; use --data/);
  const both = await runCli(['convert', '--analysis', a, '--budget', '0.25', '--calib', folder, '--data', folder, '--out', join(dir, 'conv-both')]);
  assert.match(both.stderr, /convert: --calib is the old name of --data/);
});

test('--data that is not text (random bytes) gets a warning naming the file', async () => {
  const bytes = Buffer.alloc(1500);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 97 + 13) & 255;
  const bin = join(dir, 'random.bin');
  writeFileSync(bin, bytes);
  const r = await runCli([...PPL, '--data', bin]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: .*random\.bin does not look like text: \d+\.\d% of its characters are NUL bytes or invalid UTF-8/);
  assert.equal((await runCli([...PPL, '--data', text])).stderr, '', 'no warning for text');
  assert.equal(notTextShare('ab\u0000\ufffd'), 0.5);
  assert.equal(notTextShare('naïve — ünïcode 字'), 0);
});

test('RECURFORMER_THREADS: a non-integer or < 1 is an error naming it; a huge value is clamped with a warning', () => {
  assert.deepEqual(checkThreadsEnv(undefined, 2), { value: null, warning: null });
  assert.deepEqual(checkThreadsEnv('3', 2), { value: null, warning: null });
  for (const bad of ['abc', '0', '-2', '1.5', '1e3', '0x10']) {
    assert.throws(() => checkThreadsEnv(bad, 2), (e: unknown) => e instanceof BackendError && e.message.startsWith(`RECURFORMER_THREADS=${bad} is not a positive integer`), bad);
  }
  const huge = checkThreadsEnv('100000', 2);
  assert.equal(huge.value, '8');
  assert.match(huge.warning ?? '', /RECURFORMER_THREADS=100000 is more than 8 .*using 8/);
  assert.equal(maxThreads(1000), 256);
});

test('RECURFORMER_THREADS end to end: abc exits 1 with the message, 100000 runs clamped instead of aborting', () => {
  const info = (threads: string): ReturnType<typeof spawnSync> => {
    const env: NodeJS.ProcessEnv = { ...process.env, RECURFORMER_THREADS: threads };
    delete env.RECURFORMER_QUIET;
    delete env.RECURFORMER_BACKEND;
    return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
      'import { main } from "./src/cli/main.ts"; process.exitCode = await main(["info", "--json"]);'], { env, encoding: 'utf8' });
  };
  const bad = info('abc');
  assert.equal(bad.status, 1, String(bad.stderr));
  assert.match(String(bad.stderr), /recurformer: RECURFORMER_THREADS=abc is not a positive integer/);
  const huge = info('100000');
  assert.equal(huge.status, 0, String(huge.stderr));
  const b = JSON.parse(String(huge.stdout)) as { backend: string; threads: number };
  if (b.backend === 'native') {
    assert.equal(b.threads, maxThreads());
    assert.match(String(huge.stderr), /warning: RECURFORMER_THREADS=100000 is more than/);
  }
});
