/**
 * Builds the demo models' training corpus: the bundled texts (minus the held-out ones) cut into documents, mixed
 * with synthetic retrieval documents in the eval formats (src/eval/synthetic.ts) with fresh random keys, shuffled
 * with a seed, written as one JSONL file (field "text").
 *
 *   node --import tsx scripts/demo/build-corpus.ts OUT.jsonl [--seed 0] [--synthetic 700] [--real 1]
 *     [--max-fillers 90] [--max-pairs 160] [--max-chars 7700] [--min-fillers 0] [--min-pairs 0] [--min-chars 200]
 *     [--edge-depths 0] [--repeat 0] [--max-copy 120] [--copy-numbers 0.1] [--hashhop 0] [--hashhop-hops 2]
 *     [--hashhop-alphabet letters] [--hashhop-queries 1]
 *
 * --synthetic: documents per retrieval task; --real: fraction of the real-text documents kept (seeded); the --min-*
 * and --max-* options bound the synthetic documents' sizes (passkey filler blocks, hashhop pairs, needle haystack
 * characters; drawn uniformly in [min, max)), so a long-context stage can ask for documents near the context;
 * --edge-depths: the fraction of passkey and needle documents whose key sits at depth exactly 0 or 1 (half each)
 * instead of a uniform depth: a uniform draw almost never puts it right after the passkey intro, where the
 * evaluation's depth 0 does;
 * --repeat adds that many copy documents (a random sequence of 10 to --max-copy common words written twice; a
 * --copy-numbers fraction of them are 5-digit numbers instead);
 * --hashhop adds that many further hashhop documents of 1 to --hashhop-hops hops (pairs in [--min-pairs, --max-pairs)),
 * for a model that is to learn HashHop (a corpus built without it stays what it was); --hashhop-alphabet: what every
 * hashhop document's hashes are made of (letters or digits, src/eval/synthetic.ts); --hashhop-queries: how many chains
 * each of the --hashhop documents asks for, one answered query after another (more answers per long document).
 *
 * Held out (never trained on): data/gutenberg/frankenstein_pg84.txt (the needle haystack and perplexity text of the
 * evaluation) and the last 10% of the TinyStories excerpt. WikiText-2 is never trained on: its CC BY-SA license
 * makes it evaluation-only here (data/wikitext-2/SOURCE.md).
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../src/io/tensor-file.js';
import { HASH_ALPHABETS, hashhopCase, hashhopDocument, needleCase, passkeyCase, type HashAlphabet } from '../../src/eval/synthetic.js';
import { Rng } from '../../src/tensor/rng.js';

const args = process.argv.slice(2);
const out = args[0];
if (!out) throw new Error('usage: build-corpus.ts OUT.jsonl [--seed N] [--synthetic N]');
const opt = (name: string, def: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const rng = new Rng(opt('--seed', 0));
const perTask = opt("--synthetic", 700);
const realFraction = opt('--real', 1);
const repeats = opt('--repeat', 0);
const maxCopy = opt('--max-copy', 120), copyNumbers = opt('--copy-numbers', 0.1);
const maxFillers = opt('--max-fillers', 90), maxPairs = opt('--max-pairs', 160), maxChars = opt('--max-chars', 7700);
const minFillers = opt('--min-fillers', 0), minPairs = opt('--min-pairs', 0), minChars = opt('--min-chars', 200);
if (!(minFillers < maxFillers && minPairs < maxPairs && minChars < maxChars)) throw new Error('each --min-* must be below its --max-*');
const between = (lo: number, hi: number): number => lo + rng.int(hi - lo);
const edgeDepths = opt('--edge-depths', 0);
const alphabetAt = args.indexOf('--hashhop-alphabet');
const alphabet = (alphabetAt >= 0 ? args[alphabetAt + 1] : 'letters') as HashAlphabet;
if (!HASH_ALPHABETS.includes(alphabet)) throw new Error(`--hashhop-alphabet must be one of ${HASH_ALPHABETS.join(', ')}`);
// no draw when --edge-depths is 0, so corpora built without it stay what they were
const depth = (): number => (edgeDepths > 0 && rng.next() < edgeDepths ? (rng.next() < 0.5 ? 0 : 1) : rng.next());

const read = (p: string): string => readFileSync(new URL(`../../data/${p}`, import.meta.url), 'utf8');
const stories = read('tinystories-valid-excerpt/tinystories_val.txt');
const real: Record<string, string> = {
  tinystories: stories.slice(0, Math.floor(stories.length * 0.9)),
  shakespeare: read('tinyshakespeare/input.txt'),
  alice: read('gutenberg/alice_in_wonderland_pg11.txt'),
  moby: read('gutenberg/moby_dick_pg2701.txt'),
  pride: read('gutenberg/pride_and_prejudice_pg1342.txt'),
};
const haystacks = [real['alice']!, real['moby']!, real['pride']!];

const docs: string[] = [];
// Real text: documents of 1,000 to 8,000 characters cut at blank lines.
for (const text of Object.values(real)) {
  const paras = text.split(/\n\s*\n/);
  let cur = '';
  let want = 1000 + rng.int(7000);
  for (const p of paras) {
    cur += (cur ? '\n\n' : '') + p.trim();
    if (cur.length >= want) {
      docs.push(cur);
      cur = '';
      want = 1000 + rng.int(7000);
    }
  }
  if (cur.trim()) docs.push(cur);
}
if (realFraction < 1) {
  for (let i = docs.length - 1; i >= 0; i--) if (rng.next() >= realFraction) docs.splice(i, 1);
}
const nReal = docs.length;
// Synthetic retrieval documents, lengths spread up to about 2,000 tokens.
for (let i = 0; i < perTask; i++) {
  const p = passkeyCase(rng, between(minFillers, maxFillers), depth());
  docs.push(p.prompt + p.answer + '.');
  const hops = 1 + rng.int(4);
  const h = hashhopCase(rng, hops + between(minPairs, maxPairs), hops, alphabet);
  docs.push(h.prompt + h.answer + '.');
  const n = needleCase(rng, haystacks[rng.int(haystacks.length)]!, between(minChars, maxChars), depth());
  docs.push(n.prompt + n.answer + '.');
}
// Copy documents (a random word sequence, then the same again): every second half is predictable only by looking
// back, the strongest training signal for the induction heads retrieval needs. The words are the 2,000 most frequent
// lowercase words of the stories (911 of them one token of the demo tokenizer, the rest two or three), so copying
// rarely needs multi-token matching; random letter strings, which the tokenizer splits into letters, make every
// letter pair ambiguous. The copy distance varies with the sequence length, so only a content-based (induction) head
// can predict the second half, not one that looks back a fixed number of tokens.
const common = (() => {
  const counts = new Map<string, number>();
  for (const w of real['tinystories']!.match(/\b[a-z]{3,}\b/g) ?? []) counts.set(w, (counts.get(w) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 2000).map(([w]) => w);
})();
for (let i = 0; i < repeats; i++) {
  const words = Array.from({ length: 10 + rng.int(maxCopy - 10) }, () => (rng.next() < copyNumbers
    ? String(10000 + rng.int(90000))
    : common[rng.int(common.length)]!));
  docs.push(`Copy: ${words.join(' ')}.\nAgain: ${words.join(' ')}.`);
}
const extraHashhop = opt('--hashhop', 0), maxHops = opt('--hashhop-hops', 2), queries = opt('--hashhop-queries', 1);
for (let i = 0; i < extraHashhop; i++) {
  const hops = 1 + rng.int(maxHops);
  if (queries > 1) {
    docs.push(hashhopDocument(rng, hops + between(minPairs, maxPairs), hops, queries, alphabet));
  } else { // one query, drawn as corpora built before --hashhop-queries drew it
    const h = hashhopCase(rng, hops + between(minPairs, maxPairs), hops, alphabet);
    docs.push(h.prompt + h.answer + '.');
  }
}
for (let i = docs.length - 1; i > 0; i--) {
  const j = rng.int(i + 1);
  [docs[i], docs[j]] = [docs[j]!, docs[i]!];
}
const body = docs.map((text) => JSON.stringify({ text })).join('\n') + '\n';
writeFileAtomic(out, Buffer.from(body));
const chars = docs.reduce((s, d) => s + d.length, 0);
console.log(`${docs.length} documents (${nReal} real, ${docs.length - nReal} synthetic), ${(chars / 1e6).toFixed(1)}M characters -> ${out}`);
