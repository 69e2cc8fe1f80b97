/**
 * The BPE merge loop shared by every tokenizer: given initial symbols, repeatedly merge the adjacent pair with the
 * best (lowest) priority, leftmost first on ties, until no adjacent pair is mergeable.
 *
 * The priority is the only difference between the BPE flavours:
 * - SentencePiece BPE: -score of the piece (left + right) when it is in the vocabulary;
 * - Hugging Face / GPT-2 BPE: the rank of the pair (left, right) in the merges list.
 *
 * A binary heap with lazy deletion makes it O(n log n), like SentencePiece's agenda: stale heap entries (whose
 * symbols were merged away since they were pushed) are recognized and skipped. Ties are broken by the left symbol's
 * original index, which is also its position, so "leftmost first" holds as in both reference implementations.
 */

/** Priority of merging `left` and `right` (lower merges first), or undefined if the pair cannot merge. */
export type PairPriority = (left: string, right: string) => number | undefined;

interface Candidate {
  pri: number;
  left: number;
  right: number;
  /** Symbol lengths at push time, to detect entries made stale by a later merge. */
  leftLen: number;
  rightLen: number;
}

export function bpeMerge(symbols: string[], priority: PairPriority): string[] {
  const n = symbols.length;
  if (n < 2) return symbols.slice();
  const sym = symbols.slice();
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const heap: Candidate[] = [];
  const push = (l: number, r: number) => {
    if (l < 0 || r < 0) return;
    const pri = priority(sym[l]!, sym[r]!);
    if (pri !== undefined) heapPush(heap, { pri, left: l, right: r, leftLen: sym[l]!.length, rightLen: sym[r]!.length });
  };
  for (let i = 0; i + 1 < n; i++) push(i, i + 1);

  while (heap.length > 0) {
    const c = heapPop(heap);
    // Stale if either side was merged away or grew since the candidate was pushed.
    if (sym[c.left] === '' || sym[c.right] === '' || next[c.left] !== c.right) continue;
    if (sym[c.left]!.length !== c.leftLen || sym[c.right]!.length !== c.rightLen) continue;
    sym[c.left] = sym[c.left]! + sym[c.right]!;
    sym[c.right] = '';
    const after = next[c.right]!;
    next[c.left] = after;
    if (after >= 0) prev[after] = c.left;
    push(prev[c.left]!, c.left);
    push(c.left, after);
  }
  const out: string[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
  return out;
}

function before(a: Candidate, b: Candidate): boolean {
  return a.pri < b.pri || (a.pri === b.pri && a.left < b.left);
}

function heapPush(h: Candidate[], c: Candidate): void {
  h.push(c);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!before(h[i]!, h[p]!)) break;
    [h[i], h[p]] = [h[p]!, h[i]!];
    i = p;
  }
}

function heapPop(h: Candidate[]): Candidate {
  const top = h[0]!;
  const last = h.pop()!;
  if (h.length > 0) {
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
  return top;
}
