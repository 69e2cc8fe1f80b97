/** `recurformer export [MODEL] --format hf|gguf --out PATH`: write a model as a Hugging Face folder or GGUF. */
import type { Command } from 'commander';
import { ArgumentError } from '../../tensor/errors.js';
import { loadModel, toHalfRope } from '../../io/model-load.js';
import { GGUF_EXPORT_TYPES, isGgufExportType } from '../../io/kquants-mix.js';
import { storedFloatDtype, writeGgufModel, writeHfFolder } from '../../io/model-save.js';
import { parseShardSize } from '../../io/safetensors.js';
import { modelPath, printJson } from '../common.js';
import { modelArgument } from '../help.js';
import { prepareOutDir, prepareOutFile, writingTo } from '../output.js';

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write a model as a Hugging Face folder (safetensors) or a GGUF file')
    .addArgument(modelArgument())
    .requiredOption('--out <path>', 'output folder (hf) or file (gguf)')
    .option('--format <f>', 'hf or gguf', 'hf')
    .option('--dtype <d>', 'keep (the stored type; BF16 becomes F16 in GGUF), F32, F16; BF16 for hf; '
      + 'Q8_0, Q4_K, Q6_K or Q4_K_M (llama.cpp\'s mix: Q6_K for the output and half of attn_v/ffn_down) for gguf', 'keep')
    .option('--max-shard-size <size>', 'hf: largest safetensors file; bigger models are sharded with an index (bytes, or e.g. 2GB)', '2GB')
    .option('--json', 'print a JSON summary')
    .action((model: string | undefined, o: { out: string; format: string; dtype: string; maxShardSize: string; json?: boolean }) => {
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
        if (!isGgufExportType(dtype)) throw new ArgumentError('export', '--dtype', `${o.dtype} is not one of ${GGUF_EXPORT_TYPES.join(', ')} for GGUF`);
        prepareOutFile('export', '--out', o.out);
        writingTo('export', '--out', o.out, () => writeGgufModel(o.out, lm, dtype));
      } else {
        throw new ArgumentError('export', '--format', `${o.format} is not hf or gguf`);
      }
      const summary = { out: o.out, format: o.format, dtype, tensors: lm.tensors.size, tokenizerWritten };
      if (o.json) printJson(summary);
      else process.stdout.write(`wrote ${o.out} (${o.format}, ${dtype}, ${lm.tensors.size} tensors${tokenizerWritten ? '' : ', no tokenizer'})\n`);
    });
}
