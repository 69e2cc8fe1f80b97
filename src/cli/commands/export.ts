/**
 * `recurformer export [MODEL] --format hf|hf-torch|gguf --out PATH`: write a model as a Hugging Face folder or GGUF.
 * hf-torch: the folder as it is plus config.json's auto_map and the PyTorch modeling code (python/recurformer_torch),
 * so transformers loads it with `AutoModelForCausalLM.from_pretrained(PATH, trust_remote_code=True)` (docs/scale.md);
 * written by `python3 -m recurformer_torch.hf_export` (RECURFORMER_PYTHON picks the interpreter).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ArgumentError } from '../../tensor/errors.js';
import { loadModel, toHalfRope } from '../../io/model-load.js';
import { GGUF_EXPORT_TYPES, isGgufExportType } from '../../io/kquants-mix.js';
import { storedFloatDtype, writeGgufModel, writeHfFolder } from '../../io/model-save.js';
import { parseShardSize } from '../../io/safetensors.js';
import { modelPath, packageRoot, printJson } from '../common.js';
import { modelArgument } from '../help.js';
import { prepareOutDir, prepareOutFile, writingTo } from '../output.js';
import { torchPython } from './train-torch.js';

/** `--format hf-torch`: the python package writes it (one definition of the files and auto_map). */
function exportHfTorch(model: string, out: string, json: boolean): void {
  const python = torchPython();
  const env = { ...process.env, PYTHONPATH: [join(packageRoot(), 'python'), process.env.PYTHONPATH].filter(Boolean).join(':') };
  const r = spawnSync(python, ['-m', 'recurformer_torch.hf_export', model, '--out', out, ...(json ? ['--json'] : [])], { stdio: ['ignore', 'pipe', 'pipe'], env, encoding: 'utf8' });
  const stderr = r.stderr ?? '';
  if (r.error || r.status !== 0) {
    const own = /^error: (.*)$/m.exec(stderr); // the exporter's own refusal (not a model folder, unsupported config)
    if (own && !r.error) throw new ArgumentError('export', 'MODEL', own[1]!);
    const last = stderr.trim().split('\n').pop();
    throw new ArgumentError('export', '--format hf-torch', r.error ? `cannot run ${python} (${r.error.message})` : `${python} -m recurformer_torch.hf_export failed${last ? `: ${last}` : ''}`,
      'it needs a python with torch and numpy: `pip install torch numpy` (or `apt-get install python3-torch`), or set RECURFORMER_PYTHON; '
      + 'loading the result needs transformers too');
  }
  process.stderr.write(stderr);
  process.stdout.write(r.stdout ?? '');
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write a model as a Hugging Face folder (safetensors) or a GGUF file')
    .addArgument(modelArgument())
    .requiredOption('--out <path>', 'output folder (hf) or file (gguf)')
    .option('--format <f>', 'hf, hf-torch (hf + the PyTorch code for transformers\' trust_remote_code; needs python with torch) or gguf', 'hf')
    .option('--dtype <d>', 'keep (the stored type; BF16 becomes F16 in GGUF), F32, F16; BF16 for hf; '
      + 'Q8_0, Q4_K, Q6_K or Q4_K_M (llama.cpp\'s mix: Q6_K for the output and half of attn_v/ffn_down) for gguf', 'keep')
    .option('--max-shard-size <size>', 'hf: largest safetensors file; bigger models are sharded with an index (bytes, or e.g. 2GB)', '2GB')
    .option('--json', 'print a JSON summary')
    .action((model: string | undefined, o: { out: string; format: string; dtype: string; maxShardSize: string; json?: boolean }) => {
      if (o.format === 'hf-torch') {
        if (o.dtype.toUpperCase() !== 'KEEP') throw new ArgumentError('export', '--dtype', `${o.dtype}: hf-torch copies the folder as it is (--dtype keep)`);
        prepareOutDir('export', '--out', o.out);
        exportHfTorch(modelPath(model), o.out, o.json === true);
        return;
      }
      const maxShardBytes = parseShardSize(o.maxShardSize);
      let lm = loadModel(modelPath(model));
      const stored = storedFloatDtype(lm.tensors);
      const dtype = o.dtype.toUpperCase() !== 'KEEP' ? o.dtype.toUpperCase() : o.format === 'gguf' && stored === 'BF16' ? 'F16' : stored;
      if (lm.config.ropeStyle === 'interleaved') lm = toHalfRope(lm);
      let tokenizerWritten = true;
      if (o.format === 'hf') {
        if (!['F32', 'F16', 'BF16'].includes(dtype)) throw new ArgumentError('export', '--dtype', `${o.dtype} is not F32, F16 or BF16`);
        prepareOutDir('export', '--out', o.out); // a path that cannot be written fails before any tensor is converted
        tokenizerWritten = writingTo('export', '--out', o.out, () => writeHfFolder(o.out, lm, dtype as 'F32' | 'F16' | 'BF16', { maxShardBytes })).tokenizerWritten;
      } else if (o.format === 'gguf') {
        if (lm.recurformer) {
          throw new ArgumentError('export', '--format gguf', `${lm.source} is a converted model (${lm.recurformer.kind ?? 'recurrent'} heads), which llama.cpp cannot run`,
            'keep it as a Hugging Face folder (`export --format hf`), or export it for PyTorch with `--format hf-torch`');
        }
        if (!isGgufExportType(dtype)) throw new ArgumentError('export', '--dtype', `${o.dtype} is not one of ${GGUF_EXPORT_TYPES.join(', ')} for GGUF`);
        prepareOutFile('export', '--out', o.out);
        writingTo('export', '--out', o.out, () => writeGgufModel(o.out, lm, dtype));
      } else {
        throw new ArgumentError('export', '--format', `${o.format} is not hf, hf-torch or gguf`);
      }
      const summary = { out: o.out, format: o.format, dtype, tensors: lm.tensors.size, tokenizerWritten };
      if (o.json) printJson(summary);
      else process.stdout.write(`wrote ${o.out} (${o.format}, ${dtype}, ${lm.tensors.size} tensors${tokenizerWritten ? '' : ', no tokenizer'})\n`);
    });
}
