/**
 * Help texts follow one convention (commander's `(default: …)`, `(required)`, an Examples section per command);
 * generate reads its prompt from stdin or a file; MODEL may be a train run folder (its model/), and a lone
 * .safetensors file is refused with its folder as the hint; the retrieval table points to a record only when one was
 * written.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { formatRetrievalTable } from '../../src/cli/commands/eval-retrieval.js';
import type { RetrievalResult } from '../../src/eval/record.js';
import { trainValuesFromCli } from '../../src/cli/commands/train.js';
import { fakeAnalysis, runCli } from '../helpers/cli.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rf-help-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function allCommands(cmd: Command, path: string[] = []): { path: string[]; cmd: Command }[] {
  return cmd.commands.flatMap((c) => [{ path: [...path, c.name()], cmd: c }, ...allCommands(c, [...path, c.name()])]);
}

test('every command\'s help ends with examples; defaults are commander\'s, never written into a description', async () => {
  const commands = allCommands(buildProgram());
  assert.ok(commands.length >= 15);
  for (const { path, cmd } of commands) {
    const r = await runCli([...path, '--help']);
    assert.equal(r.code, 0, path.join(' '));
    assert.match(r.stdout, /\nExamples:\n {2}\$ recurformer /, path.join(' '));
    for (const o of cmd.options) assert.doesNotMatch(o.description, /\bdefault\b/i, `${path.join(' ')} ${o.flags}`);
    for (const a of cmd.registeredArguments) assert.doesNotMatch(a.description, /\bdefault\b/i, `${path.join(' ')} ${a.name()}`);
  }
});

test('help marks required options and shows computed defaults the way commander shows fixed ones', async () => {
  const ppl = (await runCli(['eval', 'ppl', '--help'])).stdout.replace(/\s+/g, ' ');
  assert.match(ppl, /--data <path> text to score: .*\(required\)/);
  assert.match(ppl, /--ctx <n> window length in tokens \(default: "256"\)/);
  assert.match(ppl, /--stride <n> .* \(default: --ctx, non-overlapping\)/);
  assert.match(ppl, /model .* \(default: the bundled stories260K\)/);
  const convert = (await runCli(['convert', '--help'])).stdout.replace(/\s+/g, ' ');
  assert.match(convert, /--data <path> text for the output-scale fit: .* \(default: the bundled TinyStories excerpt\)/);
  assert.match(convert, /--calib <path> deprecated name of --data/);
  assert.match(convert, /model .* \(default: the bundled stories260K\)/);
  assert.match(convert, /--protect-retrieval <nats> .* \(default: 0\.1 when the analysis has a retrieval probe\)/);
  assert.match(convert, /--chunk <n> SSD chunk length for prefill \(default: 64, or the converted model's\)/);
  const serve = (await runCli(['serve', '--help'])).stdout.replace(/\s+/g, ' ');
  assert.match(serve, /model .* \(default: the bundled stories260K\)/);
  assert.match(serve, /--host <host> .* \(default: "127\.0\.0\.1"\)/);
  assert.match(serve, /--max-prompt-chars <n> .* \(default: \d+ per token of the context\)/);
  // train's defaults come from the options' schema (test/train/options-cli.test.ts checks every one)
  const train = (await runCli(['train', '--help'])).stdout.replace(/\s+/g, ' ');
  assert.match(train, /--steps <n> optimizer steps \(default: 200\)/);
  assert.match(train, /--trainable <set> .* \(default: recurrent; all for pretrain\)/);
});

const GREEDY = ['--temperature', '0', '--max-tokens', '12', '--json'];

test('generate --prompt-file FILE and --prompt - (stdin) give what --prompt TEXT gives', async () => {
  const prompt = 'Once upon a time, there was a dog';
  const direct = await runCli(['generate', '--prompt', prompt, ...GREEDY]);
  assert.equal(direct.code, 0, direct.stderr);
  const f = join(dir, 'prompt.txt');
  writeFileSync(f, `${prompt}\n`); // the final newline an editor adds is dropped
  const fromFile = await runCli(['generate', '--prompt-file', f, ...GREEDY]);
  assert.equal(fromFile.stdout, direct.stdout);
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    `import { main } from "./src/cli/main.ts"; process.exitCode = await main(${JSON.stringify(['generate', '--prompt', '-', ...GREEDY])});`],
  { input: `${prompt}\n`, encoding: 'utf8', env: { ...process.env, RECURFORMER_QUIET: '1' } });
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout, direct.stdout);
  const both = await runCli(['generate', '--prompt', 'x', '--prompt-file', f]);
  assert.equal(both.code, 1);
  assert.match(both.stderr, /generate: --prompt-file cannot be combined with --prompt/);
  const missing = await runCli(['generate', '--prompt-file', join(dir, 'nope.txt')]);
  assert.match(missing.stderr, /--prompt-file .*nope\.txt does not exist/);
});

test('MODEL: a train run folder means its model/; a .safetensors file is refused with its folder as the hint', async () => {
  const run = join(dir, 'run');
  mkdirSync(run);
  assert.equal((await runCli(['export', '--out', join(run, 'model')])).code, 0);
  writeFileSync(join(run, 'checkpoint.bin'), '');
  const base = await runCli(['generate', ...GREEDY]);
  const fromRun = await runCli(['generate', run, ...GREEDY]);
  assert.equal(fromRun.code, 0, fromRun.stderr);
  assert.equal(fromRun.stdout, base.stdout);
  assert.equal((await runCli(['inspect', run, '--json'])).code, 0);
  // convert and train take a run folder too (the next stage of a pipeline starts from the last one's run)
  const a = join(dir, 'analysis-run.json');
  writeFileSync(a, JSON.stringify(fakeAnalysis()));
  const conv = await runCli(['convert', run, '--analysis', a, '--budget', '0.25', '--calib-tokens', '32', '--out', join(dir, 'conv-from-run'), '--json']);
  assert.equal(conv.code, 0, conv.stderr);
  assert.equal(trainValuesFromCli(run, { teacher: run, data: 'd', out: 'o' }).model, join(run, 'model'));
  assert.equal(trainValuesFromCli(run, { teacher: run, data: 'd', out: 'o' }).teacher, join(run, 'model'));
  const st = join(run, 'model', 'model.safetensors');
  const r = await runCli(['generate', st, ...GREEDY]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /MODEL .*model\.safetensors is one weights file, not a model\n {2}hint: pass the folder holding it with its config\.json: .*run\/model/);
});

test('the retrieval table says "N more in FILE" only when a record file was written', () => {
  const misses = Array.from({ length: 8 }, (_, sample) => ({ length: 96, depth: 0.5, sample, expected: ' 12345', got: ' 1' }));
  const r: RetrievalResult = {
    cells: [{ length: 96, depth: 0.5, n: 8, correct: 0, accuracy: 0, meanTokens: 90 }], misses,
    byLength: [{ length: 96, n: 8, accuracy: 0 }], accuracy: 0, chance: 1 / 90000,
  };
  const plain = formatRetrievalTable('passkey', r);
  assert.doesNotMatch(plain, /JSON record/);
  assert.match(plain, / {2}\.\.\. 3 more \(pass --out FILE or --json for the record listing them all\)/);
  assert.match(formatRetrievalTable('passkey', r, 'runs/p.json'), / {2}\.\.\. 3 more in runs\/p\.json \(result\.misses\)/);
});
