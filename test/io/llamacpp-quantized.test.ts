/**
 * K-quant files made by llama.cpp itself, read by us. node-llama-cpp 3.21.1 binds no quantization API, but the
 * libllama it ships exports llama_model_quantize: test/helpers/llamacpp-quantize.c calls it through dlopen and is
 * compiled with `cc` at test time. models/demo-llama is exported by our writer as F32 GGUF; llama.cpp quantizes it to
 * Q4_K_M, Q5_K_M and Q6_K with its own mix and its own (importance-free) scale search. Per file: the tensor types are
 * K-quants of the mix; each matrix as our reader dequantizes it is within its type's quantization error of the F32
 * source (a misread scale, min or bit plane is off by far more); our greedy tokens on the file equal llama.cpp's on
 * the same file. demo-llama is a trained model, so its greedy tokens survive quantization (they equal the F32 file's):
 * the token check catches a misread model, the error bound a misread block. Skipped, with the reason, where there is
 * no C compiler, no libllama or no llama.cpp.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readGguf } from '../../src/io/gguf.js';
import { GgmlType, ggmlTypeName } from '../../src/io/ggml-quants.js';
import { loadModel } from '../../src/io/model-load.js';
import { writeGgufModel } from '../../src/io/model-save.js';
import { toF32 } from '../../src/io/tensor-file.js';
import { relRms } from '../helpers/tolerances.js';
import { assertSameTokens, demoLlama, llamaCpp, llamaCppGreedy, oursGreedy } from '../helpers/llamacpp.js';
import { tempDir } from './tmp.js';

const dir = tempDir('llamacpp-quantized');
/** node-llama-cpp's prebuilt libllama (libllama.v0.4.0.so in 3.21.1). */
const BINS = fileURLToPath(new URL('../../node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/', import.meta.url));
const LIBLLAMA = existsSync(BINS) ? readdirSync(BINS).filter((f) => /^libllama\..*so$/.test(f)).map((f) => join(BINS, f))[0] : undefined;
const SOURCE = fileURLToPath(new URL('../helpers/llamacpp-quantize.c', import.meta.url));

/** llama.cpp's enum llama_ftype (include/llama.h) and the K-quant types each mix may use for a 2-D weight. */
const FTYPES = [
  { name: 'Q4_K_M', ftype: 15, types: [GgmlType.Q4_K, GgmlType.Q6_K], main: GgmlType.Q4_K },
  { name: 'Q5_K_M', ftype: 17, types: [GgmlType.Q5_K, GgmlType.Q6_K], main: GgmlType.Q5_K },
  { name: 'Q6_K', ftype: 18, types: [GgmlType.Q6_K], main: GgmlType.Q6_K },
] as const;

/** The compiled quantizer, or why there is none. */
const quantizer: string | { exe: string } = (() => {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `node-llama-cpp's linux-x64 libllama is used; this is ${process.platform}-${process.arch}`;
  if (LIBLLAMA === undefined) return `no libllama*.so in ${BINS} (npm install node-llama-cpp@3.21.1)`;
  if (spawnSync('cc', ['--version']).status !== 0) return 'no C compiler (cc) to build test/helpers/llamacpp-quantize.c';
  const exe = join(dir, 'llamacpp-quantize');
  const r = spawnSync('cc', ['-O1', '-o', exe, SOURCE, '-ldl'], { encoding: 'utf8' });
  return r.status === 0 ? { exe } : `cc failed on llamacpp-quantize.c: ${r.stderr.split('\n')[0]}`;
})();
const skip = typeof quantizer === 'string' ? quantizer : typeof llamaCpp === 'string' ? llamaCpp : false;

/**
 * Relative RMS error of a dequantized matrix against the F32 source, per type (measured on demo-llama's matrices with
 * llama.cpp's quantizers, worst matrix: Q4_K 0.074, Q5_K 0.037, Q6_K 0.021), and the least error that shows the
 * tensor really was quantized.
 */
const ERROR_BOUND: Partial<Record<GgmlType, number>> = { [GgmlType.Q4_K]: 0.1, [GgmlType.Q5_K]: 0.05, [GgmlType.Q6_K]: 0.03 };
const MIN_ERROR = 1e-3;

const PROMPTS = ['Once upon a time, there was a', 'The passkey is 4 8 1 5. Remember it. The grass is green.'];

test('llama.cpp-made Q4_K_M, Q5_K_M and Q6_K files of demo-llama: K-quant tensors within their error of the source, our greedy tokens equal llama.cpp\'s', { skip }, async () => {
  const f32 = join(dir, 'demo-llama-f32.gguf');
  writeGgufModel(f32, demoLlama(), 'F32', 'demo-llama');
  const source = readGguf(f32);
  for (const { name, ftype, types, main } of FTYPES) {
    const path = join(dir, `demo-llama-${name}.gguf`);
    try {
      execFileSync((quantizer as { exe: string }).exe, [LIBLLAMA!, f32, path, String(ftype)], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      assert.fail(`llama_model_quantize to ${name} failed: ${String((e as { stderr?: Buffer }).stderr ?? e).slice(-500)}`);
    }

    // every matrix is a K-quant of the mix (demo-llama's rows are 256 or 768 wide: no fallback type is needed)
    const f = readGguf(path, { tensors: false });
    assert.equal(f.metadata.get('general.file_type')?.value, ftype, `${name}: general.file_type`);
    const matrices = f.tensorInfos.filter((t) => t.shape.length === 2);
    assert.deepEqual(matrices.map((t) => t.name).sort(), source.tensorInfos.filter((t) => t.shape.length === 2).map((t) => t.name).sort(), `${name}: the source's matrices`);
    for (const t of matrices) {
      assert.ok((types as readonly GgmlType[]).includes(t.type), `${name}: ${t.name} is ${ggmlTypeName(t.type)}`);
    }
    assert.ok(matrices.filter((t) => t.type === main).length > matrices.length / 2, `${name}: mostly ${ggmlTypeName(main)}`);
    for (const t of f.tensorInfos.filter((i) => i.shape.length === 1)) assert.equal(t.type, GgmlType.F32, `${name}: ${t.name} stays F32`);

    const q = readGguf(path);
    for (const t of matrices) {
      const err = relRms(toF32(source.tensors.get(t.name)!), toF32(q.tensors.get(t.name)!));
      assert.ok(err > MIN_ERROR && err < ERROR_BOUND[t.type]!, `${name}: ${t.name} (${ggmlTypeName(t.type)}) relative RMS error ${err}`);
    }

    const m = loadModel(path);
    const prompts = PROMPTS.map((text) => m.tokenizer!.encode(text, { bos: true }));
    const theirs = await llamaCppGreedy(path, prompts);
    prompts.forEach((prompt, i) => assertSameTokens(theirs[i]!, oursGreedy(m, prompt), m.config.eosId, `${name}, "${PROMPTS[i]}"`, { model: m, prompt }));
  }
});
