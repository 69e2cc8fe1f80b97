/**
 * Deterministic mutators for the fuzz targets: everything an input is made of comes from one 32-bit seed, so a
 * failure is replayed from its seed alone (harness.ts).
 *
 * - bytes: flips, interesting integers written over known header fields (counts, lengths, dims, offsets) or at
 *   aligned header positions, truncations, insertions, deletions, splices from the same or another seed file, and
 *   trailing garbage. Positions favour the seed's "hot" ranges (its headers), where a parser makes its decisions.
 * - JSON: a random walk picks a node (shallow nodes more often than the leaves of a 4,096-entry vocabulary), which is
 *   deleted, given another type, nudged (numbers, strings, arrays), renamed or replaced by another subtree; a few
 *   outputs also get text-level damage (JSON that no longer parses).
 */

/** sfc32: small, fast, and the same sequence everywhere. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 2 ** 32) * n);
  }

  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  /** Index into `weights`, each picked in proportion to its weight. */
  weighted(weights: readonly number[]): number {
    let r = (this.u32() / 2 ** 32) * weights.reduce((s, w) => s + w, 0);
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i]!;
      if (r < 0) return i;
    }
    return weights.length - 1;
  }
}

/** The seed of input `i` of a run with base seed `base` (splitmix32-style mixing: neighbours share nothing). */
export function inputSeed(base: number, i: number): number {
  let z = (base + Math.imul(i + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

// ---- bytes ------------------------------------------------------------------------------------------------------

/** An integer field of a binary seed file: where a count, length, type, dim or offset is stored. */
export interface Field {
  at: number;
  size: 1 | 2 | 4 | 8;
  /** For the mutation log: "tensor count", "dim 0 of 'x'". */
  what: string;
}

/**
 * A binary seed. `tail` zero bytes follow `bytes` (a large file's data region, written sparse: loading reads
 * headers, so zeros serve as well as weights and cost no disk).
 */
export interface ByteSeed {
  name: string;
  bytes: Buffer;
  tail?: number;
  /** Ranges (headers) where mutations land most of the time. */
  hot?: [number, number][];
  fields?: Field[];
}

export interface Mutated {
  bytes: Buffer;
  tail: number;
  log: string[];
}

const INTERESTING = [0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 33, 63, 64, 127, 128, 255, 256, 1023, 1024, 4095, 4096, 65535, 65536,
  0x7ffffffe, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const INTERESTING_64 = [2n ** 32n, 2n ** 32n + 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 62n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n];

function readField(b: Buffer, f: Field): bigint {
  if (f.at + f.size > b.length) return 0n;
  return f.size === 8 ? b.readBigUInt64LE(f.at) : BigInt(f.size === 4 ? b.readUInt32LE(f.at) : f.size === 2 ? b.readUInt16LE(f.at) : b[f.at]!);
}

function writeField(b: Buffer, f: Field, v: bigint): void {
  if (f.at + f.size > b.length) return;
  const m = (1n << BigInt(8 * f.size)) - 1n;
  const x = ((v % (m + 1n)) + (m + 1n)) & m; // wrap negatives (two's complement)
  if (f.size === 8) b.writeBigUInt64LE(x, f.at);
  else if (f.size === 4) b.writeUInt32LE(Number(x), f.at);
  else if (f.size === 2) b.writeUInt16LE(Number(x), f.at);
  else b[f.at] = Number(x);
}

/** An interesting value for a field that holds `orig`: off by one, doubled, halved, zero, all ones, 2^31, 2^53... */
function interesting(rng: Rng, orig: bigint, size: number, total: number): bigint {
  switch (rng.int(6)) {
    case 0: return orig + BigInt(rng.pick([1, -1, 2, -2, 8, -8, 32, -32]));
    case 1: return orig * BigInt(rng.pick([2, 3, 4, 1000])) + BigInt(rng.int(2));
    case 2: return orig / BigInt(rng.pick([2, 4]));
    case 3: return BigInt(total + rng.pick([0, 1, -1, -8, 8]));
    case 4: return size === 8 && rng.chance(0.5) ? rng.pick(INTERESTING_64) : BigInt(rng.pick(INTERESTING));
    default: return -BigInt(rng.pick([1, 2, 8, 2 ** 31]));
  }
}

/** A position: in a hot range most of the time, else anywhere in [0, len). */
function position(rng: Rng, seed: ByteSeed, len: number): number {
  const hot = seed.hot?.filter(([a, b]) => b > a && a < len);
  if (hot && hot.length > 0 && rng.chance(0.75)) {
    const [a, b] = rng.pick(hot);
    return Math.min(len - 1, a + rng.int(Math.min(b, len) - a));
  }
  return rng.int(len);
}

/** Apply 1 to 3 byte-level mutations. `others` are donor files for splices (any format). */
export function mutateBytes(rng: Rng, seed: ByteSeed, others: readonly ByteSeed[]): Mutated {
  let b = Buffer.from(seed.bytes);
  let tail = seed.tail ?? 0;
  const log: string[] = [];
  const rounds = 1 + rng.weighted([6, 3, 1]);
  for (let r = 0; r < rounds; r++) {
    if (b.length === 0) break;
    const op = rng.weighted([5, seed.fields?.length ? 6 : 0, 3, 3, 2, 2, 2, 1, 1]);
    if (op === 0) {
      const k = 1 + rng.int(8);
      const at: number[] = [];
      for (let j = 0; j < k; j++) {
        const p = position(rng, seed, b.length);
        b[p] = rng.chance(0.5) ? b[p]! ^ (1 << rng.int(8)) : rng.int(256);
        at.push(p);
      }
      log.push(`flip @${at.join(',')}`);
    } else if (op === 1) {
      const f = rng.pick(seed.fields!);
      const v = interesting(rng, readField(b, f), f.size, b.length + tail);
      writeField(b, f, v);
      log.push(`set ${f.what} (@${f.at}, u${f.size * 8}) = ${v}`);
    } else if (op === 2) {
      const size = rng.pick([4, 8] as const);
      const at = Math.max(0, position(rng, seed, b.length) & ~(size === 8 ? 7 : 3));
      const f: Field = { at, size, what: 'word' };
      const v = interesting(rng, readField(b, f), size, b.length + tail);
      writeField(b, f, v);
      log.push(`set u${size * 8} @${at} = ${v}`);
    } else if (op === 3) {
      // truncate: in the header most of the time, else anywhere in the whole file (the sparse tail included)
      const total = b.length + tail;
      const at = rng.chance(0.6) ? position(rng, seed, b.length) : rng.int(total);
      if (at < b.length) {
        b = b.subarray(0, at);
        tail = 0;
      } else {
        tail = at - b.length;
      }
      log.push(`truncate to ${at} of ${total}`);
    } else if (op === 4) {
      const at = position(rng, seed, b.length + 1);
      const donor = rng.chance(0.5) ? seed : rng.pick([seed, ...others]);
      const ins = rng.chance(0.5) ? randomBytes(rng, 1 + rng.int(16)) : chunk(rng, donor.bytes, 1 + rng.int(64));
      b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
      log.push(`insert ${ins.length} bytes @${at}${donor !== seed ? ` (from ${donor.name})` : ''}`);
    } else if (op === 5) {
      const at = position(rng, seed, b.length);
      const n = 1 + rng.int(rng.chance(0.7) ? 8 : 256);
      b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + n))]);
      log.push(`delete ${n} bytes @${at}`);
    } else if (op === 6) {
      // splice: overwrite a range with another file's bytes at the same offset (or this file's, elsewhere)
      const donor = rng.pick([seed, ...others]);
      const at = position(rng, seed, b.length);
      const n = Math.min(b.length - at, 1 + rng.int(64));
      const from = donor === seed ? rng.int(Math.max(1, donor.bytes.length - n)) : Math.min(at, Math.max(0, donor.bytes.length - n));
      donor.bytes.copy(b, at, from, from + n);
      log.push(`splice ${n} bytes @${at} from ${donor.name}@${from}`);
    } else if (op === 7) {
      const extra = randomBytes(rng, 1 + rng.int(64));
      if (tail > 0) tail += extra.length;
      else b = Buffer.concat([b, extra]);
      log.push(`append ${extra.length} bytes`);
    } else {
      // duplicate a range in place (a repeated record: a key, a tensor info, a token)
      const at = position(rng, seed, b.length);
      const n = Math.min(b.length - at, 1 + rng.int(48));
      b = Buffer.concat([b.subarray(0, at + n), b.subarray(at, at + n), b.subarray(at + n)]);
      log.push(`duplicate ${n} bytes @${at}`);
    }
  }
  return { bytes: b, tail, log };
}

function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rng.chance(0.3) ? rng.pick([0, 0xff, 0x7f, 0x80, 0x22, 0x7b, 0x7d]) : rng.int(256);
  return b;
}

function chunk(rng: Rng, b: Buffer, n: number): Buffer {
  const at = rng.int(Math.max(1, b.length - n));
  return Buffer.from(b.subarray(at, at + n));
}

/** Text-level damage to a JSON file: flips, a truncation, a stray token. */
export function mutateText(rng: Rng, text: string): { text: string; log: string } {
  const op = rng.int(4);
  if (op === 0) {
    const at = rng.int(text.length + 1);
    return { text: text.slice(0, at), log: `truncate text to ${at}` };
  }
  if (op === 1) {
    const at = rng.int(text.length + 1);
    const tok = rng.pick(['{', '}', '[', ']', '"', '\\', ',', ':', 'null', '1e999', '-', '\u0000', '\ud800', '/*', '"__proto__":1,']);
    return { text: text.slice(0, at) + tok + text.slice(at), log: `insert ${JSON.stringify(tok)} @${at}` };
  }
  if (op === 2) {
    const b = Buffer.from(text, 'utf8');
    const at = rng.int(b.length);
    b[at] = rng.int(256);
    return { text: b.toString('latin1'), log: `flip byte @${at} (latin1)` };
  }
  const at = rng.int(text.length);
  const n = 1 + rng.int(32);
  return { text: text.slice(0, at) + text.slice(at + n), log: `delete ${n} chars @${at}` };
}

// ---- JSON ---------------------------------------------------------------------------------------------------------

type J = null | boolean | number | string | J[] | { [k: string]: J };
type Container = J[] | { [k: string]: J };

/** Placeholders replaced in the serialized text: values JSON.stringify cannot write. */
const INF = '@@fuzz:Infinity@@';
const NEG_INF = '@@fuzz:-Infinity@@';

const isContainer = (v: J): v is Container => typeof v === 'object' && v !== null;

function keysOf(c: Container): (string | number)[] {
  return Array.isArray(c) ? c.map((_, i) => i) : Object.keys(c);
}

function get(c: Container, k: string | number): J {
  return (c as Record<string | number, J>)[k]!;
}

function set(c: Container, k: string | number, v: J): void {
  (c as Record<string | number, J>)[k] = v;
}

/** A value of another kind than `v`. */
function otherType(rng: Rng, v: J): J {
  const pool: J[] = [null, true, false, 0, -1, 1, 0.5, -0.5, 1e308, 2 ** 31, 2 ** 32, 2 ** 53 + 2, INF, NEG_INF, '', 'x', '<s>', '\u2581',
    '\u0000', 'a'.repeat(2000), [], {}, [null], [0, 1, 2], ['a', 'b'], { type: 'Sequence' }, { a: 1 }, [[[[[[[[[[[[]]]]]]]]]]]]];
  for (let k = 0; k < 8; k++) {
    const c = rng.pick(pool);
    if (typeof c !== typeof v || Array.isArray(c) !== Array.isArray(v) || (c === null) !== (v === null)) return structuredClone(c);
  }
  return null;
}

function nudgeNumber(rng: Rng, n: number): J {
  return rng.pick<J>([n + 1, n - 1, -n, 0, n * 1000, n + 0.5, n / 3, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 1e9, Number.MAX_SAFE_INTEGER + 2, -1, INF, NEG_INF]);
}

function nudgeString(rng: Rng, s: string, strings: readonly string[]): string {
  switch (rng.int(6)) {
    case 0: return '';
    case 1: return s + s;
    case 2: return s.slice(0, Math.floor(s.length / 2));
    case 3: return rng.pick(strings);
    case 4: {
      const at = rng.int(s.length + 1);
      return s.slice(0, at) + rng.pick(['\u0000', '\ud83d', '\u2581', ' ', '\n', '"', '\\', 'é', '日', '\ufffd']) + s.slice(at + 1);
    }
    default: return s.toUpperCase() === s ? s.toLowerCase() : s.toUpperCase();
  }
}

/** Regex fragments for split patterns: nesting, alternation, classes, bad escapes. */
const REGEX_BITS = ['+', '*', '?', '{2,}', '{1,3}', '(', ')', '(?:', '|', '\\p{L}', '\\p{N}', '[', ']', '\\', '.*', '(a+)+', '(?:\\s+)+$',
  '(\\p{L}|\\p{N})*', '(?i:', '\\u{110000}', '(?<=', '(?!\\S)', '\\k<x>', '[^\\s\\p{L}]+', '(?:\\p{L}+\\s?)*', '(x|x)+', '$', '^'];

function nudgeRegex(rng: Rng, re: string): string {
  if (rng.chance(0.2)) return rng.pick(['(a+)+$', '(\\s*)*x', '(?:\\p{L}+)+!', '(.*a){12}', '(\\w|\\d)+z', '(?:a|ab)*c', '([^\\s]+\\s?)+$']);
  const at = rng.int(re.length + 1);
  const bit = rng.pick(REGEX_BITS);
  return rng.chance(0.7) ? re.slice(0, at) + bit + re.slice(at) : re.slice(0, at) + re.slice(at + 1 + rng.int(6));
}

/** Every string value and key of a document (replacement material), at most `max`. */
function strings(doc: J, max = 200): string[] {
  const out: string[] = [];
  const walk = (v: J): void => {
    if (out.length >= max) return;
    if (typeof v === 'string') out.push(v);
    else if (isContainer(v)) {
      for (const k of keysOf(v)) {
        if (typeof k === 'string' && out.length < max) out.push(k);
        walk(get(v, k));
        if (out.length >= max) return;
      }
    }
  };
  walk(doc);
  return out.length > 0 ? out : [''];
}

/** A random subtree (by a random walk), for splicing. */
function randomSubtree(rng: Rng, doc: J): J {
  let v = doc;
  while (isContainer(v) && keysOf(v).length > 0 && rng.chance(0.6)) v = get(v, rng.pick(keysOf(v)));
  return structuredClone(v);
}

export interface JsonMutation {
  text: string;
  log: string;
}

/**
 * Mutate a JSON document: walk from the root to a node (stopping early with probability `stop` at each level, so
 * shallow keys are hit often), then change it. `regexKeys` are keys whose string values are regexes (Split
 * patterns), given regex-aware edits. The result keeps the seed's indentation.
 */
export function mutateJson(rng: Rng, text: string, o: { donors?: readonly string[]; regexKeys?: readonly string[]; stop?: number } = {}): JsonMutation {
  const doc = JSON.parse(text) as J;
  const indent = /\n\s/.test(text.slice(0, 200)) ? 2 : 0;
  const logs: string[] = [];
  const edits = 1 + rng.weighted([7, 2, 1]);
  let root: J = doc;
  for (let e = 0; e < edits; e++) root = mutateOnce(rng, root, o, logs);
  let out = JSON.stringify(root, null, indent) ?? 'null';
  out = out.replaceAll(`"${INF}"`, '1e999').replaceAll(`"${NEG_INF}"`, '-1e999');
  if (rng.chance(0.1)) {
    const t = mutateText(rng, out);
    out = t.text;
    logs.push(t.log);
  }
  return { text: out, log: logs.join('; ') };
}

function mutateOnce(rng: Rng, root: J, o: { donors?: readonly string[]; regexKeys?: readonly string[]; stop?: number }, logs: string[]): J {
  if (!isContainer(root) || keysOf(root).length === 0) {
    logs.push('root replaced');
    return otherType(rng, root);
  }
  // a regex edit goes straight to a pattern, which a random walk would seldom reach
  if (o.regexKeys && rng.chance(0.25)) {
    const spots: { c: Container; k: string | number; path: string }[] = [];
    const find = (v: J, path: string): void => {
      if (!isContainer(v)) return;
      for (const k of keysOf(v)) {
        const x = get(v, k);
        if (typeof k === 'string' && o.regexKeys!.includes(k) && typeof x === 'string') spots.push({ c: v, k, path: `${path}.${k}` });
        else if (isContainer(x) && !(typeof k === 'string' && (k === 'vocab' || k === 'merges'))) find(x, `${path}.${k}`);
      }
    };
    find(root, '');
    if (spots.length > 0) {
      const s = rng.pick(spots);
      const v = nudgeRegex(rng, get(s.c, s.k) as string);
      set(s.c, s.k, v);
      logs.push(`regex ${s.path} = ${JSON.stringify(v)}`);
      return root;
    }
  }
  const stop = o.stop ?? 0.35;
  let parent: Container = root;
  let key = rng.pick(keysOf(root));
  let path = `.${key}`;
  for (;;) {
    const v = get(parent, key);
    if (!isContainer(v) || keysOf(v).length === 0 || rng.chance(stop)) break;
    parent = v;
    key = rng.pick(keysOf(v));
    path += `.${key}`;
  }
  const v = get(parent, key);
  const op = rng.weighted([3, 4, typeof v === 'number' ? 4 : 0, typeof v === 'string' ? 3 : 0, Array.isArray(v) ? 3 : 0, Array.isArray(parent) ? 0 : 2, 1, 1]);
  if (op === 0) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key as string];
    logs.push(`delete ${path}`);
  } else if (op === 1) {
    const w = otherType(rng, v);
    set(parent, key, w);
    logs.push(`${path} = ${short(w)}`);
  } else if (op === 2) {
    const w = nudgeNumber(rng, v as number);
    set(parent, key, w);
    logs.push(`${path}: ${v as number} -> ${short(w)}`);
  } else if (op === 3) {
    const w = nudgeString(rng, v as string, strings(root));
    set(parent, key, w);
    logs.push(`${path} = ${short(w)}`);
  } else if (op === 4) {
    const a = v as J[];
    const kind = rng.int(5);
    if (kind === 0) a.length = 0;
    else if (kind === 1 && a.length > 0) a.push(structuredClone(a[rng.int(a.length)]!));
    else if (kind === 2) a.reverse();
    else if (kind === 3 && a.length > 0) a.splice(rng.int(a.length), 1);
    else a.push(otherType(rng, a[0] ?? null));
    logs.push(`${path}: array edit ${['emptied', 'element duplicated', 'reversed', 'element dropped', 'odd element appended'][kind]}`);
  } else if (op === 5) {
    const obj = parent as Record<string, J>;
    if (rng.chance(0.5)) {
      const k = rng.pick([...strings(root, 60), 'unknown_key', '__proto__', 'constructor', 'type']);
      obj[k] = otherType(rng, null);
      logs.push(`add key ${JSON.stringify(k)} beside ${path}`);
    } else {
      const k = key as string;
      const renamed = k.length > 1 ? k.slice(0, -1) : `${k}_`;
      obj[renamed] = obj[k]!;
      delete obj[k];
      logs.push(`rename ${path} -> ${renamed}`);
    }
  } else if (op === 6) {
    const donor = o.donors?.length && rng.chance(0.5) ? JSON.parse(rng.pick(o.donors)) as J : root;
    const w = randomSubtree(rng, donor);
    set(parent, key, w);
    logs.push(`${path} = subtree ${short(w)}`);
  } else {
    // swap two values of the same container
    const ks = keysOf(parent);
    const k2 = rng.pick(ks);
    const tmp = get(parent, key);
    set(parent, key, get(parent, k2));
    set(parent, k2, tmp);
    logs.push(`swap ${path} <-> ${String(k2)}`);
  }
  return root;
}

function short(v: J): string {
  const s = JSON.stringify(v) ?? 'undefined';
  return (s.length > 60 ? `${s.slice(0, 57)}...` : s).replaceAll(`"${INF}"`, '1e999').replaceAll(`"${NEG_INF}"`, '-1e999');
}
