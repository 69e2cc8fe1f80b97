/**
 * Counts that a file cannot hold are FormatErrors naming the file and the key, raised before anything is allocated
 * for them: a GGUF claiming 4294967295 layers or a config.json with 1e9 layers used to grow the loader to gigabytes
 * and abort after a minute. Each case here is a tiny hand-made file and must fail at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../src/tensor/errors.js';
import { configFromHf } from '../../src/model/config.js';
import { GgufType, parseGguf } from '../../src/io/gguf.js';
import { loadModel, type LoadedModel } from '../../src/io/model-load.js';
import { writeGgufModel, writeHfFolder } from '../../src/io/model-save.js';
import { numel, type RawTensor } from '../../src/io/tensor-file.js';
import { weightTable } from '../../src/io/weight-names.js';
import { ggufHeader, kv } from './hand-made.js';
import { tempDir } from './tmp.js';

const dir = tempDir('bounds');

/** Throws a FormatError whose message has every needle, within a second. */
function failsFast(fn: () => unknown, ...needles: string[]): void {
  const t0 = performance.now();
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    for (const n of needles) assert.ok(e.message.includes(n), `message ${JSON.stringify(e.message)} lacks ${n}`);
    return true;
  });
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
}

function tinyModel(): LoadedModel {
  const config = configFromHf({
    model_type: 'llama', vocab_size: 8, hidden_size: 4, intermediate_size: 8, num_hidden_layers: 2, num_attention_heads: 2,
    max_position_embeddings: 16, bos_token_id: 1, eos_token_id: 2,
  }, 'tiny');
  const tensors = new Map<string, RawTensor>(weightTable(config).map((e) =>
    [e.hf, { name: e.hf, dtype: 'F32', shape: e.shape, data: new Float32Array(numel(e.shape)).fill(0.5) }]));
  return { source: 'tiny', format: 'hf', config, tensors, tokenizer: null, tokenizerSource: null };
}

test('GGUF llama.block_count = 0xFFFFFFFF: a FormatError naming the file and the key, not an out-of-memory abort', () => {
  const path = join(dir, 'layers.gguf');
  writeGgufModel(path, tinyModel());
  const buf = readFileSync(path);
  const key = 'llama.block_count';
  buf.writeUInt32LE(0xffffffff, buf.indexOf(key) + key.length + 4); // after the key, its u32 type tag
  writeFileSync(path, buf);
  failsFast(() => loadModel(path), path, "'llama.block_count' = 4294967295", '2 layers');
});

test('config.json num_hidden_layers = 1e9: a FormatError naming config.json and the key', () => {
  const hf = join(dir, 'hf');
  writeHfFolder(hf, tinyModel());
  const cfgPath = join(hf, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, num_hidden_layers: 1e9 }));
  failsFast(() => loadModel(hf), cfgPath, '"num_hidden_layers" = 1000000000', '2 layers');
  // a count below the layers present is named the same way (it used to surface as an "extra" tensor)
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, num_hidden_layers: 1 }));
  failsFast(() => loadModel(hf), '"num_hidden_layers" = 1', '2 layers');
});

test('GGUF tensor and metadata counts beyond what the file holds', () => {
  const head = (o: { tensorCount?: bigint; kvCount?: bigint }) => ggufHeader([kv.u32('a', 1)], [], o);
  failsFast(() => parseGguf(head({ tensorCount: 2n ** 40n }), 't.gguf'), 't.gguf', 'tensor count 1099511627776 cannot fit');
  failsFast(() => parseGguf(head({ kvCount: 2n ** 40n }), 'k.gguf'), 'k.gguf', 'metadata count 1099511627776 cannot fit');
  failsFast(() => parseGguf(head({ tensorCount: 2n ** 63n }), 'big.gguf'), 'big.gguf', 'tensor count', 'too large');
  // 3 tensor infos need at least 72 bytes; this header has fewer left after the counts
  failsFast(() => parseGguf(head({ tensorCount: 3n }), 'three.gguf'), 'tensor count 3 cannot fit');
});

test('GGUF array lengths beyond what the file holds, for every element kind', () => {
  const cases: [number, bigint][] = [
    [GgufType.STRING, 2n ** 40n], [GgufType.U32, 2n ** 50n], [GgufType.F64, 2n ** 40n], [GgufType.BOOL, 2n ** 40n],
    // each element needs at least 8 (string) or 12 (array) bytes: 1000 elements cannot fit in 1000 bytes
    [GgufType.STRING, 1000n], [GgufType.ARRAY, 1000n],
  ];
  for (const [type, n] of cases) {
    const file = Buffer.concat([ggufHeader([kv.array('tokens', type, n)], []), Buffer.alloc(1000)]);
    failsFast(() => parseGguf(file, 'arr.gguf'), 'arr.gguf', `array 'tokens' (${n} elements)`);
  }
});
