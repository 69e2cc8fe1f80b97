/**
 * CLI entry: the only place that catches errors, prints them and sets the exit code. Each command is
 * options -> library call -> report; argument parsing is commander's.
 */
import { Command, CommanderError } from 'commander';
import { RecurformerError } from '../tensor/errors.js';
import { backend } from '../tensor/backend.js';
import { registerAnalyze } from './commands/analyze.js';
import { registerConvert } from './commands/convert.js';
import { registerEval } from './commands/eval.js';
import { registerExport } from './commands/export.js';
import { registerGenerate } from './commands/generate.js';
import { registerInspect } from './commands/inspect.js';
import { registerServe } from './commands/serve.js';
import { registerTrain } from './commands/train.js';
import { addExamples, helpConfiguration } from './help.js';

export function buildProgram(): Command {
  const program = new Command('recurformer')
    .description('Make long inputs affordable for Transformer LLMs: analyze heads, convert recency heads to recurrent ones.')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .configureHelp(helpConfiguration); // before the commands: they inherit it

  program
    .command('info')
    .description('show the tensor backend in use (native or reference), its SIMD level and thread count')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const b = backend();
      const info = { backend: b.name, simd: b.simd, quantSimd: b.quantSimd, threads: b.threads, nativeKernels: b.nativeKernels.length };
      process.stdout.write(opts.json ? `${JSON.stringify(info)}\n`
        : `backend ${info.backend} (simd ${info.simd}, quantized products ${info.quantSimd}, ${info.threads} threads, ${info.nativeKernels} native kernels)\n`);
    });
  registerGenerate(program);
  registerInspect(program);
  registerEval(program);
  registerExport(program);
  registerAnalyze(program);
  registerConvert(program);
  registerServe(program);
  registerTrain(program);
  addExamples(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof RecurformerError) {
      process.stderr.write(`recurformer: ${e.message}\n`);
      return 1;
    }
    // a file-system failure no command turned into a typed error (disk full, permissions): its message, not a stack
    if (isSystemError(e)) {
      process.stderr.write(`recurformer: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}
