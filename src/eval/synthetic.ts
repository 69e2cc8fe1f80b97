/**
 * The synthetic retrieval formats, shared by the evaluation tasks (`recurformer eval passkey|hashhop|needle`) and
 * the demo models' training corpus (scripts/demo/build-corpus.ts), so a model trained on them is tested on exactly
 * the format it learned, with fresh random keys.
 *
 * Every case is a prompt and the answer its greedy continuation must start with. All three formats put a space in
 * front of every key, hash and secret word wherever it occurs, so a byte-level or SentencePiece BPE tokenizes each
 * occurrence identically and retrieval is a pure copy.
 *
 *   passkey  (Mohtashami & Jaggi 2023): a fixed filler sentence block repeated, a 5-digit key at a chosen depth,
 *            then "What is the pass key? The pass key is" -> " 12345".
 *   hashhop  (magic.dev's HashHop, chain-of-thought form): random pairs "a = b" of 6-character hashes, shuffled, then
 *            a query hash; the answer spells every hop: "Query: a =" -> " b = c" for 2 hops. The hashes are letters
 *            (the default) or digits: a small BPE cuts random letters into rare pieces that differ from hash to hash,
 *            while a tokenizer that splits digits gives every digit hash the same six one-digit tokens, so a small
 *            model can learn to copy them (the demo models use digits).
 *   needle   (Kamradt's needle in a haystack): a sentence "The secret word of NAME is WORD." inserted at a chosen depth
 *            into real text, then "What is the secret word of NAME? The secret word of NAME is" -> " WORD".
 */
import { ArgumentError } from '../tensor/errors.js';
import type { Rng } from '../tensor/rng.js';

export interface RetrievalCase {
  prompt: string;
  /** What the greedy continuation must start with (it begins with a space). */
  answer: string;
}

export const PASSKEY_INTRO = 'There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. '
  + 'I will quiz you about the important information there.';
export const PASSKEY_FILLER = ' The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.';

/** How many distinct pass keys there are (5 digits, 10000..99999): guessing one is right with 1 / PASSKEY_KEYS. */
export const PASSKEY_KEYS = 90000;

function checkDepth(task: string, depth: number): void {
  if (!(depth >= 0 && depth <= 1)) throw new ArgumentError(task, 'depth', `= ${depth} must be within [0, 1]`);
}

/** A passkey case with `fillers` filler blocks, the key after round(depth * fillers) of them. */
export function passkeyCase(rng: Rng, fillers: number, depth: number): RetrievalCase {
  checkDepth('passkey', depth);
  const key = String(10000 + rng.int(PASSKEY_KEYS));
  const before = Math.round(depth * fillers);
  const needle = ` The pass key is ${key}. Remember it. ${key} is the pass key.`;
  const prompt = PASSKEY_INTRO + PASSKEY_FILLER.repeat(before) + needle + PASSKEY_FILLER.repeat(fillers - before)
    + '\nWhat is the pass key? The pass key is';
  return { prompt, answer: ` ${key}` };
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/** What a hashhop hash is made of: 6 lowercase letters, or 6 digits with no leading zero. */
export type HashAlphabet = 'letters' | 'digits';
export const HASH_ALPHABETS: readonly HashAlphabet[] = ['letters', 'digits'];

function randomHash(rng: Rng, used: Set<string>, alphabet: HashAlphabet): string {
  for (;;) {
    let h = '';
    if (alphabet === 'digits') h = String(100000 + rng.int(900000));
    else for (let i = 0; i < 6; i++) h += LETTERS[rng.int(26)];
    if (!used.has(h)) {
      used.add(h);
      return h;
    }
  }
}

/** The pairs of a hashhop prompt, shuffled, and the chains they were made of (the first has `hops` links). */
function hashChains(rng: Rng, pairs: number, hops: number, alphabet: HashAlphabet): { lines: string[]; chains: string[][] } {
  if (!(Number.isInteger(hops) && hops >= 1)) throw new ArgumentError('hashhop', 'hops', `= ${hops} must be a positive integer`);
  if (!(Number.isInteger(pairs) && pairs >= hops)) throw new ArgumentError('hashhop', 'pairs', `= ${pairs} must be an integer >= hops (${hops})`);
  if (!HASH_ALPHABETS.includes(alphabet)) {
    throw new ArgumentError('hashhop', 'alphabet', `= ${JSON.stringify(alphabet)} is not one of ${HASH_ALPHABETS.join(', ')}`);
  }
  const used = new Set<string>();
  const lines: string[] = [];
  const chains: string[][] = [];
  for (let left = pairs; left > 0;) {
    const links = Math.min(hops, left);
    const chain = Array.from({ length: links + 1 }, () => randomHash(rng, used, alphabet));
    for (let i = 0; i < links; i++) lines.push(`${chain[i]} = ${chain[i + 1]}`);
    chains.push(chain);
    left -= links;
  }
  for (let i = lines.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [lines[i], lines[j]] = [lines[j]!, lines[i]!];
  }
  return { lines, chains };
}

/**
 * A hashhop case: `pairs` pairs in all, made of chains of `hops` links (the queried chain plus distractor chains;
 * the remainder of pairs / hops become shorter chains), shuffled. The answer walks the queried chain.
 */
export function hashhopCase(rng: Rng, pairs: number, hops: number, alphabet: HashAlphabet = 'letters'): RetrievalCase {
  const { lines, chains } = hashChains(rng, pairs, hops, alphabet);
  const query = chains[0]!;
  const prompt = `Pairs: ${lines.join(', ')}.\nQuery: ${query[0]} =`;
  return { prompt, answer: ' ' + query.slice(1).join(' = ') };
}

/**
 * A hashhop training document with up to `queries` queries, each of another chain with `hops` links, each line
 * answered: "Pairs: ....\nQuery: a = b = c.\nQuery: d = e = f." One query is the evaluation's format; more give a
 * long document more answers to learn from (a document of 2,000 tokens otherwise teaches retrieval through its last
 * dozen tokens only).
 */
export function hashhopDocument(rng: Rng, pairs: number, hops: number, queries: number, alphabet: HashAlphabet = 'letters'): string {
  if (!(Number.isInteger(queries) && queries >= 1)) throw new ArgumentError('hashhop', 'queries', `= ${queries} must be a positive integer`);
  const { lines, chains } = hashChains(rng, pairs, hops, alphabet);
  const full = chains.filter((c) => c.length === hops + 1);
  for (let i = full.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [full[i], full[j]] = [full[j]!, full[i]!];
  }
  return `Pairs: ${lines.join(', ')}.` + full.slice(0, queries).map((c) => `\nQuery: ${c.join(' = ')}.`).join('');
}

const NAMES = ['Anna', 'Ben', 'Clara', 'David', 'Emma', 'Felix', 'Grace', 'Henry', 'Iris', 'Jack', 'Kate', 'Leo', 'Mia',
  'Noah', 'Olive', 'Peter', 'Quinn', 'Rose', 'Sam', 'Tara', 'Uma', 'Victor', 'Wendy', 'Xavier', 'Yara', 'Zoe', 'Arthur',
  'Bella', 'Colin', 'Daisy', 'Edgar', 'Fiona', 'George', 'Hazel', 'Isaac', 'Julia', 'Kevin', 'Lucy', 'Martin', 'Nina'];
const WORDS = ['apple', 'river', 'candle', 'garden', 'silver', 'window', 'forest', 'pencil', 'castle', 'orange', 'bridge',
  'mirror', 'rabbit', 'anchor', 'basket', 'button', 'carpet', 'dragon', 'feather', 'guitar', 'hammer', 'island',
  'jacket', 'kettle', 'ladder', 'marble', 'needle', 'pepper', 'pillow', 'rocket', 'saddle', 'tunnel', 'violin',
  'wagon', 'yellow', 'zebra', 'lemon', 'planet', 'shadow', 'thunder', 'copper', 'meadow', 'harbor', 'lantern',
  'blanket', 'cherry', 'dolphin', 'engine', 'falcon', 'ginger'];

/** How many secret words a needle draws from: guessing the word is right with 1 / NEEDLE_WORDS. */
export const NEEDLE_WORDS = WORDS.length;

/** A text file's contents as plain text: no byte-order mark, LF line ends (the bundled books carry both). */
export function plainText(raw: string): string {
  return raw.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n');
}

/** Cut `text` at sentence ends (". ", "! ", "? " or a newline) into pieces, keeping the separators. */
function sentences(text: string): string[] {
  return text.split(/(?<=[.!?]["']?\s|\n)/).filter((s) => s.length > 0);
}

/**
 * A needle case: about `chars` characters of `haystack` starting at a random sentence, the needle inserted at the
 * sentence boundary nearest to `depth`.
 */
export function needleCase(rng: Rng, haystack: string, chars: number, depth: number): RetrievalCase {
  checkDepth('needle', depth);
  if (haystack.length < chars + 1) {
    throw new ArgumentError('needle', 'haystack', `has ${haystack.length} characters, fewer than the ${chars} asked for`, 'use a longer text or a shorter length');
  }
  const start = haystack.indexOf('. ', rng.int(haystack.length - chars)) + 2;
  const from = start >= 2 && start + chars <= haystack.length ? start : 0;
  const parts = sentences(haystack.slice(from, from + chars).replace(/\s+/g, ' ').trimStart());
  if (parts.length > 1) parts.pop(); // the last piece is cut mid-sentence
  const name = NAMES[rng.int(NAMES.length)]!;
  const word = WORDS[rng.int(WORDS.length)]!;
  const at = Math.round(depth * parts.length);
  const head = parts.slice(0, at).join('');
  const needle = `${head.length === 0 || head.endsWith(' ') ? '' : ' '}The secret word of ${name} is ${word}. `;
  const prompt = head + needle + parts.slice(at).join('').trimEnd()
    + `\nWhat is the secret word of ${name}? The secret word of ${name} is`;
  return { prompt, answer: ` ${word}` };
}
