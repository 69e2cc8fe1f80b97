/** Sharded writing: above --max-shard-size, model-0000k-of-0000n.safetensors + index; read back bit-exactly. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/io/model-load.js';
import { parseShardSize, writeSafetensorsFolder } from '../../src/io/safetensors.js';
import { toF32 } from '../../src/io/tensor-file.js';
import { ArgumentError } from '../../src/tensor/errors.js';
import { fakeAnalysis, runCli } from '../helpers/cli.js';
import { tempDir } from './tmp.js';

const weightFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f.endsWith('.index.json')).sort();

test('export --max-shard-size 300KB shards stories260K with an index; it loads back bit-exactly; a later single-file export removes the shards', async () => {
  const dir = tempDir('shards');
  const out = join(dir, 'hf');
  const r = await runCli(['export', '--format', 'hf', '--max-shard-size', '300KB', '--out', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const files = weightFiles(out);
  assert.deepEqual(files.at(-1), 'model.safetensors.index.json');
  const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  assert.ok(shards.length >= 3, files.join(', '));
  assert.ok(shards.every((f) => statSync(join(out, f)).size <= 300_000 + 4096), 'each shard within the limit (+ its header)');
  const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
  const orig = loadModel('models/stories260K');
  assert.equal(Object.keys(index.weight_map).length, orig.tensors.size);
  assert.equal(index.metadata.total_size, [...orig.tensors.values()].reduce((s, t) => s + toF32(t).byteLength, 0));
  const back = loadModel(out);
  for (const [name, t] of orig.tensors) assert.deepEqual(toF32(back.tensors.get(name)!), toF32(t), name);
  const g = await runCli(['generate', out, '--temperature', '0', '--max-tokens', '20', '--json']);
  const g0 = await runCli(['generate', '--temperature', '0', '--max-tokens', '20', '--json']);
  assert.deepEqual(JSON.parse(g.stdout).ids, JSON.parse(g0.stdout).ids);
  assert.equal((await runCli(['export', '--format', 'hf', '--out', out])).code, 0);
  assert.deepEqual(weightFiles(out), ['model.safetensors'], 'no stale shards or index next to the single file');
});

test('convert --max-shard-size writes a sharded converted model that loads back', async () => {
  const dir = tempDir('convshards');
  const a = join(dir, 'analysis.json');
  writeFileSync(a, JSON.stringify(fakeAnalysis()));
  const out = join(dir, 'conv');
  const c = await runCli(['convert', '--analysis', a, '--budget', '0.5', '--calib-tokens', '64', '--max-shard-size', '200KB', '--out', out, '--json']);
  assert.equal(c.code, 0, c.stderr);
  assert.ok(existsSync(join(out, 'model.safetensors.index.json')));
  assert.ok(!existsSync(join(out, 'model.safetensors')));
  assert.ok(loadModel(out).recurformer);
  const bad = await runCli(['convert', '--analysis', a, '--budget', '0.5', '--max-shard-size', 'big', '--out', join(dir, 'x')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--max-shard-size = big is not a size/);
});

test('parseShardSize: bytes and KB/MB/GB as powers of 1000; a tensor larger than the limit gets a shard of its own', () => {
  assert.equal(parseShardSize('2GB'), 2e9);
  assert.equal(parseShardSize('512mb'), 512e6);
  assert.equal(parseShardSize('1000'), 1000);
  assert.throws(() => parseShardSize('0'), ArgumentError);
  const dir = tempDir('bigtensor');
  const t = (name: string, n: number) => ({ name, dtype: 'F32' as const, shape: [n], data: new Float32Array(n).fill(1) });
  const files = writeSafetensorsFolder(dir, [t('a', 10), t('b', 1000), t('c', 10)], { maxShardBytes: 100 });
  assert.deepEqual(files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);
});
