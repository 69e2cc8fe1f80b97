/** `recurformer generate [MODEL]`: sample text from a model, streamed to stdout or as JSON. */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ArgumentError, TokenizerError } from '../../tensor/errors.js';
import { generate } from '../../inference/generate.js';
import { PREFILL_CHUNK } from '../../inference/prefill.js';
import { load, parseDtypeArg, parseFloatArg, parseIntArg, printJson } from '../common.js';
import { modelArgument } from '../help.js';
import { addMemoryOptions, memoryFactory, type MemoryFlags } from '../memory-opts.js';

interface Opts extends MemoryFlags {
  prompt?: string;
  promptFile?: string;
  maxTokens: string;
  temperature: string;
  topK: string;
  topP: string;
  minP: string;
  repetitionPenalty: string;
  seed: string;
  stop: string[];
  dtype: string;
  prefillChunk: string;
  json?: boolean;
}

export function registerGenerate(program: Command): void {
  const cmd = program
    .command('generate')
    .description('generate text (an empty prompt starts from BOS)')
    .addArgument(modelArgument())
    .option('-p, --prompt <text>', 'prompt text, or - to read it from stdin (without a prompt, generation starts from BOS)')
    .option('--prompt-file <file>', 'read the prompt from FILE (long prompts, prompts with quotes or newlines)')
    .option('-n, --max-tokens <n>', 'tokens to generate', '256')
    .option('-t, --temperature <t>', 'sampling temperature (0 = greedy)', '0.8')
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', '0')
    .option('--top-p <p>', 'nucleus sampling mass', '0.9')
    .option('--min-p <p>', 'drop tokens below p times the top probability', '0')
    .option('--repetition-penalty <r>', 'penalize tokens already in the context (1 = off)', '1')
    .option('-s, --seed <s>', 'random seed', '0')
    .option('--stop <text...>', 'stop strings', [])
    .option('--dtype <d>', 'weights in memory: keep (as stored), f16 (16-bit; BF16 checkpoints stay bf16) or f32', 'keep')
    .option('--prefill-chunk <n>', 'prefill the prompt this many tokens at a time (bounds activation memory)', String(PREFILL_CHUNK))
    .option('--json', 'print {"ids": [...], "text": "..."} instead of streaming');
  addMemoryOptions(cmd).action((model: string | undefined, o: Opts) => {
      const { loaded, model: lm } = load(model, parseDtypeArg(o.dtype));
      const tok = loaded.tokenizer;
      if (!tok) throw new TokenizerError('the model has no tokenizer', 'pass a folder with tokenizer.json, or a .bin beside tokenizer.bin', loaded.source);
      const r = generate(lm, tok, readPrompt(o), {
        maxTokens: parseIntArg('--max-tokens', o.maxTokens),
        temperature: parseFloatArg('--temperature', o.temperature),
        topK: parseIntArg('--top-k', o.topK),
        topP: parseFloatArg('--top-p', o.topP),
        minP: parseFloatArg('--min-p', o.minP),
        repetitionPenalty: parseFloatArg('--repetition-penalty', o.repetitionPenalty),
        seed: parseIntArg('--seed', o.seed),
        stop: o.stop,
        prefillChunk: parseIntArg('--prefill-chunk', o.prefillChunk, 1),
        ...(memoryFactory(o) ? { memory: memoryFactory(o)! } : {}),
        onToken: o.json ? undefined : (_id, delta) => process.stdout.write(delta),
      });
      if (o.json) printJson({ ids: r.ids, text: r.text, promptIds: r.promptIds, stopReason: r.stopReason });
      else process.stdout.write('\n');
    });
}

/**
 * The prompt: --prompt TEXT, --prompt - (stdin, read to its end) or --prompt-file FILE; none is the empty prompt. One
 * final newline of stdin or a file is dropped: `echo` and editors add it, and the model would continue after it.
 */
export function readPrompt(o: { prompt?: string; promptFile?: string }): string {
  if (o.prompt !== undefined && o.promptFile !== undefined) {
    throw new ArgumentError('generate', '--prompt-file', 'cannot be combined with --prompt', 'pass one of them');
  }
  if (o.promptFile !== undefined) {
    if (!existsSync(o.promptFile)) throw new ArgumentError('generate', '--prompt-file', `${o.promptFile} does not exist`);
    return dropFinalNewline(readFileSync(o.promptFile, 'utf8'));
  }
  return o.prompt === '-' ? dropFinalNewline(readFileSync(0, 'utf8')) : o.prompt ?? '';
}

const dropFinalNewline = (s: string): string => s.replace(/\r?\n$/, '');
