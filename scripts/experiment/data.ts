/**
 * Data preparation shared by the demo and the end-to-end experiment. A recipe names its preparation (`prepare`), which
 * writes the files its `{out}/...` paths name.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { plainText } from '../../src/eval/synthetic.js';

/**
 * Splits a text file at the blank line nearest before `fraction` of its length into OUT/<name>.train.txt and
 * OUT/<name>.heldout.txt (kept if they exist). The held-out part is never seen by analysis, conversion or training.
 */
export function heldoutSplit(file: string, fraction: number, out: string): { train: string; heldout: string } {
  const name = basename(file).replace(/\.[a-z]+$/i, '');
  mkdirSync(out, { recursive: true });
  const train = join(out, `${name}.train.txt`), heldout = join(out, `${name}.heldout.txt`);
  if (!existsSync(train) || !existsSync(heldout)) {
    const s = readFileSync(file, 'utf8');
    const cut = s.lastIndexOf('\n\n', Math.floor(s.length * fraction)) + 2;
    writeFileSync(train, s.slice(0, cut));
    writeFileSync(heldout, s.slice(cut));
  }
  return { train, heldout };
}

/** Runs scripts/demo/build-corpus.ts into `path` unless it exists. */
function buildCorpus(path: string, args: string[]): void {
  if (existsSync(path)) return;
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/demo/build-corpus.ts', path, ...args], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`build-corpus failed for ${path}`);
}

/**
 * The demo model's continual-training corpora under OUT (demo-corpus.jsonl, and demo-corpus-mix/ with it and the long
 * documents), its calibration text (demo-calib.txt) and the held-out perplexity text (frankenstein-heldout.txt).
 */
export function demoData(out: string): void {
  demoCorpora(out, 'demo', []);
}

/**
 * The same for demo-llama-hh, the sibling that learned HashHop with digit hashes: every hashhop document in digits,
 * and 1,000 more 1- and 2-hop ones with 4 answered queries each in each corpus, so distillation keeps what the teacher
 * learned (hh-corpus.jsonl, hh-corpus-mix/, hh-calib.txt; the held-out text is the same).
 */
export function hashhopDemoData(out: string): void {
  demoCorpora(out, 'hh', ['--hashhop', '1000', '--hashhop-hops', '2', '--hashhop-alphabet', 'digits', '--hashhop-queries', '4']);
}

function demoCorpora(out: string, prefix: string, extra: string[]): void {
  const corpus = join(out, `${prefix}-corpus.jsonl`);
  buildCorpus(corpus, ['--seed', '1', ...extra]);
  // the recipe of demo-llama's last pretraining stage (scripts/demo/recreate-models.sh), with another seed
  buildCorpus(join(out, `${prefix}-corpus-long.jsonl`), ['--seed', '1', '--synthetic', '1500', '--repeat', '6000', '--max-copy', '200',
    '--min-fillers', '40', '--max-fillers', '82', '--min-pairs', '40', '--max-pairs', '150', '--min-chars', '3000', '--max-chars', '7400',
    '--edge-depths', '0.3', ...extra]);
  // the second distillation stage reads both corpora (a folder of .jsonl files)
  const mix = join(out, `${prefix}-corpus-mix`);
  mkdirSync(mix, { recursive: true });
  for (const [from, to] of [[`${prefix}-corpus.jsonl`, 'a-short.jsonl'], [`${prefix}-corpus-long.jsonl`, 'b-long.jsonl']] as const) {
    if (!existsSync(join(mix, to))) copyFileSync(join(out, from), join(mix, to));
  }
  const calib = join(out, `${prefix}-calib.txt`);
  if (!existsSync(calib)) {
    // analysis sees the same mix as training: the first 40 documents of the (shuffled) corpus
    const docs = readFileSync(corpus, 'utf8').split('\n').filter(Boolean).slice(0, 40).map((l) => (JSON.parse(l) as { text: string }).text);
    writeFileSync(calib, docs.join('\n\n'));
  }
  const held = join(out, 'frankenstein-heldout.txt');
  if (!existsSync(held)) writeFileSync(held, plainText(readFileSync('data/gutenberg/frankenstein_pg84.txt', 'utf8')).slice(0, 60_000));
}

/** The preparations a recipe may name. */
export const PREPARATIONS = {
  /** OUT/tinystories_val.train.txt and .heldout.txt: the TinyStories excerpt split 90 / 10 at a blank line. */
  'stories-split': (out: string): void => {
    heldoutSplit('data/tinystories-valid-excerpt/tinystories_val.txt', 0.9, out);
  },
  'demo-corpora': demoData,
  'demo-hh-corpora': hashhopDemoData,
} as const;

export type Preparation = keyof typeof PREPARATIONS;

export function prepareData(kind: Preparation, out: string): void {
  mkdirSync(out, { recursive: true });
  PREPARATIONS[kind](out);
}
