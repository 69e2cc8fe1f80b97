/**
 * Fuzz (fast-check, bounded in runs and time) of the file parsers a server loads models through: mutated or
 * random bytes given to the safetensors and GGUF parsers, and mutated tokenizer.json objects, may only ever throw
 * the parser's typed error (FormatError / TokenizerError), never crash with another error or hang.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parseSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import { parseGguf } from '../../src/io/gguf.js';
import { gv, serializeGguf } from '../../src/io/gguf-write.js';
import { tokenizerFromJson } from '../../src/io/tokenizer-json.js';
import type { RawTensor } from '../../src/io/tensor-file.js';
import { FormatError, TokenizerError } from '../../src/tensor/errors.js';

const LIMITS = { numRuns: 400, interruptAfterTimeLimit: 3000 };

/** Only `E` (or success) is allowed; anything else is reported with its stack. */
function onlyThrows(E: new (...a: never[]) => Error, f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof E)) assert.fail(`threw ${(e as Error).name}, not ${E.name}: ${(e as Error).stack}`);
  }
}

type Mutation = { kind: 'flip'; at: number; byte: number }[] | { kind: 'truncate'; at: number } | { kind: 'insert'; at: number; bytes: Uint8Array };

const mutations: fc.Arbitrary<Mutation> = fc.oneof(
  fc.array(fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 8 }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
);

function mutate(seed: Buffer, m: Mutation): Buffer {
  if (Array.isArray(m)) {
    const b = Buffer.from(seed);
    for (const f of m) b[f.at % b.length] = f.byte;
    return b;
  }
  const at = m.at % (seed.length + 1);
  if (m.kind === 'truncate') return Buffer.from(seed.subarray(0, at));
  return Buffer.concat([seed.subarray(0, at), m.bytes, seed.subarray(at)]);
}

const tensors: RawTensor[] = [
  { name: 'a.weight', dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
  { name: 'b.bias', dtype: 'F16', shape: [4], data: Uint16Array.from([0x3c00, 0, 0x4000, 0xbc00]) },
  { name: 'c', dtype: 'BF16', shape: [1, 1, 2], data: Uint16Array.from([0x3f80, 0x4000]) },
];

test('safetensors: mutated files only ever throw FormatError', () => {
  const seed = Buffer.concat(serializeSafetensors(tensors, { format: 'pt' }));
  assert.equal(parseSafetensors(seed, 'seed').tensors.size, 3);
  fc.assert(fc.property(mutations, (m) => onlyThrows(FormatError, () => parseSafetensors(mutate(seed, m), 'fuzz'))), LIMITS);
});

test('safetensors: random headers (any JSON, any length prefix) only ever throw FormatError', () => {
  const header = fc.oneof(
    fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? ''),
    // entries with plausible keys and random values reach the per-tensor checks
    fc.dictionary(fc.string({ maxLength: 6 }), fc.record({
      dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I64'), fc.jsonValue({ maxDepth: 1 })),
      shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 2 ** 40 }), { maxLength: 4 }), fc.jsonValue({ maxDepth: 1 })),
      data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -1, max: 64 }), fc.integer({ min: -1, max: 64 })), fc.jsonValue({ maxDepth: 1 })),
    }), { maxKeys: 4 }).map((o) => JSON.stringify(o)),
  );
  fc.assert(fc.property(header, fc.uint8Array({ maxLength: 64 }), fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
    (h, data, lenOverride) => {
      const hb = Buffer.from(h, 'utf8');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(lenOverride ?? BigInt(hb.length));
      onlyThrows(FormatError, () => parseSafetensors(Buffer.concat([len, hb, data]), 'fuzz'));
    }), LIMITS);
});

test('safetensors and GGUF: random bytes only ever throw FormatError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (b) => {
    onlyThrows(FormatError, () => parseSafetensors(Buffer.from(b), 'fuzz'));
    onlyThrows(FormatError, () => parseGguf(Buffer.from(b), 'fuzz'));
    const g = Buffer.concat([Buffer.from('GGUF'), Buffer.from([3, 0, 0, 0]), b]); // past the magic and version
    onlyThrows(FormatError, () => parseGguf(g, 'fuzz'));
  }), LIMITS);
});

test('GGUF: mutated files only ever throw FormatError', () => {
  const meta = new Map([
    ['general.architecture', gv.str('llama')],
    ['llama.context_length', gv.u32(512)],
    ['x.f', gv.f32(0.5)],
    ['x.b', gv.bool(true)],
    ['x.names', gv.strs(['a', 'bb', 'ccc'])],
    ['x.ids', gv.i32s(Int32Array.from([1, 2, 3]))],
  ]);
  const seed = Buffer.concat(serializeGguf(meta, tensors));
  assert.equal(parseGguf(seed, 'seed').tensors.size, 3);
  fc.assert(fc.property(mutations, (m) => onlyThrows(FormatError, () => parseGguf(mutate(seed, m), 'fuzz'))), LIMITS);
});

test('tokenizer.json: mutated objects only ever throw TokenizerError', () => {
  const tj = JSON.parse(readFileSync(new URL('../fixtures/tok512/tokenizer.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  const cfg = JSON.parse(readFileSync(new URL('../fixtures/tok512/tokenizer_config.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  tokenizerFromJson(tj, cfg, 'seed'); // the seed loads
  // a path into the object (top-level key, then an optional nested key) and a value to put there (or delete)
  const paths = ['model', 'normalizer', 'pre_tokenizer', 'decoder', 'added_tokens', 'post_processor'];
  const nested = ['type', 'vocab', 'merges', 'byte_fallback', 'unk_token', 'normalizers', 'pretokenizers', 'content', 'id', '0'];
  fc.assert(fc.property(fc.constantFrom(...paths), fc.option(fc.constantFrom(...nested)), fc.option(fc.jsonValue({ maxDepth: 2 })),
    (top, inner, value) => {
      const copy = structuredClone(tj);
      const target = inner === null ? copy : copy[top];
      const key = inner ?? top;
      if (typeof target !== 'object' || target === null) return;
      if (value === null) delete (target as Record<string, unknown>)[key];
      else (target as Record<string, unknown>)[key] = value;
      onlyThrows(TokenizerError, () => {
        const tok = tokenizerFromJson(copy, cfg, 'fuzz');
        tok.decode(tok.encode('Once upon a time, Lily saw a ball.'));
      });
    }), { numRuns: 200, interruptAfterTimeLimit: 4000 });
});
