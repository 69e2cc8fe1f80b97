/**
 * Added tokens (tokenizer.json `added_tokens`): strings that are cut out of the text before the model sees it and
 * become their own id, as Hugging Face `tokenizers` does (its AddedVocabulary).
 *
 * - Special tokens (`special: true`: <|im_start|>, <|begin_of_text|>, <bos>) are matched unless the caller asks
 *   for plain text (`plain`), the equivalent of the library's `split_special_tokens`; plain text keeps a user's
 *   "<|im_start|>" from becoming a control token.
 * - Other added tokens (Qwen's <think>, Gemma's "\n" and <unusedN>) are always matched, as in the library.
 * - Matching is leftmost-longest over a character trie: at each position the longest token that starts there wins.
 * - `lstrip` / `rstrip` swallow the whitespace before / after a match; `single_word` matches only when the token is
 *   not glued to word characters on either side. Tokens with `normalized: true` are matched in the normalized text
 *   of each segment (see `matchNormalized`); real files mark their added tokens `normalized: false`.
 */

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

/** A piece of the input: plain text for the model, or an added token's id. */
export type Segment = { text: string } | { id: number };

interface TrieNode {
  next: Map<string, TrieNode>;
  token?: AddedToken;
}

const IS_WORD = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}]/u;

function buildTrie(tokens: readonly AddedToken[]): TrieNode {
  const root: TrieNode = { next: new Map() };
  for (const t of tokens) {
    if (t.content.length === 0) continue;
    let node = root;
    for (const ch of t.content) {
      let n = node.next.get(ch);
      if (!n) node.next.set(ch, (n = { next: new Map() }));
      node = n;
    }
    node.token ??= t; // the first entry wins for duplicate contents, as in the library's map
  }
  return root;
}

export class AddedVocab {
  private readonly raw: { all: TrieNode; nonSpecial: TrieNode };
  private readonly norm: { all: TrieNode; nonSpecial: TrieNode };
  /** id -> content of the added tokens that are not special (decode shows them verbatim). */
  readonly textOf = new Map<number, string>();
  readonly size: number;

  constructor(readonly tokens: readonly AddedToken[]) {
    const pick = (normalized: boolean, special: boolean) => tokens.filter((t) => t.normalized === normalized && (special || !t.special));
    this.raw = { all: buildTrie(pick(false, true)), nonSpecial: buildTrie(pick(false, false)) };
    this.norm = { all: buildTrie(pick(true, true)), nonSpecial: buildTrie(pick(true, false)) };
    for (const t of tokens) if (!t.special) this.textOf.set(t.id, t.content);
    this.size = tokens.length;
  }

  /** Cut the tokens with `normalized: false` out of raw text. */
  split(text: string, plain: boolean): Segment[] {
    return splitOn(text, plain ? this.raw.nonSpecial : this.raw.all);
  }

  /** Cut the tokens with `normalized: true` out of already normalized text. */
  matchNormalized(text: string, plain: boolean): Segment[] {
    const trie = plain ? this.norm.nonSpecial : this.norm.all;
    return trie.next.size === 0 ? [{ text }] : splitOn(text, trie);
  }
}

function splitOn(text: string, trie: TrieNode): Segment[] {
  if (trie.next.size === 0 || text.length === 0) return text.length ? [{ text }] : [];
  const out: Segment[] = [];
  let start = 0; // start of the pending plain text
  let i = 0;
  while (i < text.length) {
    const m = longestAt(text, i, trie);
    if (!m) {
      i += text.codePointAt(i)! > 0xffff ? 2 : 1;
      continue;
    }
    let from = i;
    let to = m.end;
    if (m.token.lstrip) while (from > start && /\s/u.test(text[from - 1]!)) from--;
    if (m.token.rstrip) while (to < text.length && /\s/u.test(text[to]!)) to++;
    if (from > start) out.push({ text: text.slice(start, from) });
    out.push({ id: m.token.id });
    start = i = to;
  }
  if (start < text.length) out.push({ text: text.slice(start) });
  return out;
}

function longestAt(text: string, at: number, trie: TrieNode): { token: AddedToken; end: number } | undefined {
  let node: TrieNode | undefined = trie;
  let best: { token: AddedToken; end: number } | undefined;
  let i = at;
  while (node && i < text.length) {
    const cp = text.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    node = node.next.get(ch);
    i += ch.length;
    if (node?.token && (!node.token.singleWord || isWordBoundary(text, at, i))) best = { token: node.token, end: i };
  }
  return best;
}

function isWordBoundary(text: string, from: number, to: number): boolean {
  const before = from > 0 ? text[from - 1]! : '';
  const after = to < text.length ? text[to]! : '';
  return !(before && IS_WORD.test(before)) && !(after && IS_WORD.test(after));
}
