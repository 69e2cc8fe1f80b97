/**
 * `recurformer train [MODEL] --data PATH --out DIR [--stage align|distill|pretrain] [--teacher MODEL] [--init CONFIG]
 * [--config FILE.json] [--set KEY=VALUE]... [--resume DIR] ...`: options -> TrainConfig -> runTraining -> report. The
 * training flags, their help and their defaults are generated from the schema (src/train/options.ts); precedence is
 * defaults < --config FILE < the flags given < --set (see resolveTrainValues). Progress (loss, tokens/s, ETA) on stderr when
 * it is a terminal; every step and validation in DIR/metrics.jsonl; loss curves in DIR/report.html.
 *
 * SIGINT / SIGTERM end the run after the current step with a checkpoint; the command then says how to resume and
 * exits 130 / 143 (128 + the signal's number, as a shell reports a killed command). A second signal kills at once
 * (the handlers are one-shot); the checkpoint on disk stays intact since it is replaced atomically.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { Option, type Command } from 'commander';
import { ArgumentError } from '../../tensor/errors.js';
import { runTraining, type ValidationRecord } from '../../train/loop.js';
import {
  findOptionProblem, parseOptionString, parseSetOverrides, readTrainOptionsFile, trainOption, TRAIN_OPTION_KEYS, type TrainOptionKey,
} from '../../train/options.js';
import { writeTrainReport } from '../../report/train-report.js';
import { modelPath, printJson } from '../common.js';
import { runTorchTraining } from './train-torch.js';

/**
 * What commander hands the action: each training option under its flag's camel-cased name (`--min-lr` -> minLr,
 * `--cache` -> cache), parsed by the schema (strings are accepted too, and parsed the same way), plus the flags that
 * are not training options.
 */
export interface TrainCliOpts {
  [flagAttribute: string]: string | number | boolean | string[] | undefined;
  config?: string;
  set?: string[];
  resume?: string;
  force?: boolean;
  json?: boolean;
  torchArgs?: string;
  torchLauncher?: string;
}

/** Commander's attribute name for a long flag (`min-lr` -> `minLr`). */
const attributeOf = (flag: string): string => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The training options that are flags (all but MODEL, the argument), with their flag and attribute names. */
const FLAGS = TRAIN_OPTION_KEYS.flatMap((key) => {
  const flag = trainOption(key).flag;
  return flag === null ? [] : [{ key, flag, attr: attributeOf(flag) }];
});

/** A train run folder given as a model means its model/ (as every command reads it); absent stays absent. */
const runModel = (p: string | undefined): string | undefined => (p === undefined ? undefined : modelPath(p));

/** Pure: the flags given (strings or values parsed by the schema) -> the option values they set; absent flags stay absent. */
export function trainValuesFromCli(model: string | undefined, o: TrainCliOpts): Record<string, unknown> {
  const v: Record<string, unknown> = model === undefined ? {} : { model: runModel(model) };
  for (const { key, flag, attr } of FLAGS) {
    const x = o[attr];
    if (x === undefined) continue;
    if (typeof x === 'string') v[key] = parseOptionString(key, x, `--${flag}`);
    else {
      const p = findOptionProblem({ [key]: x });
      if (p) throw new ArgumentError('train', `--${flag}`, p.message, p.hint);
      v[key] = x;
    }
  }
  if (typeof v.teacher === 'string') v.teacher = runModel(v.teacher);
  return v;
}

/**
 * The options a `train` command line asks for, by precedence: (the schema's defaults, or the resumed run's config,
 * applied later by makeTrainConfig) < the --config file < the flags given < --set KEY=VALUE (in order). `flags` holds
 * only the flags given on the command line. A resumed run writes into its folder unless an out is given.
 */
export function resolveTrainValues(model: string | undefined, flags: TrainCliOpts): Record<string, unknown> {
  // a run folder named as the model or teacher in a file or by --set means its model/, as it does as a flag
  const runModels = (v: Record<string, unknown>): Record<string, unknown> => {
    for (const k of ['model', 'teacher'] as const) if (typeof v[k] === 'string') v[k] = runModel(v[k]);
    return v;
  };
  const fromFile = flags.config === undefined ? {} : runModels({ ...readTrainOptionsFile(flags.config) });
  const values = { ...fromFile, ...trainValuesFromCli(model, flags), ...runModels({ ...parseSetOverrides(flags.set ?? []) }) };
  if (values.out === undefined && flags.resume !== undefined) values.out = flags.resume;
  return values;
}

/** The options of a parsed `train` command that were given on its command line (commander also holds the defaults). */
export function givenFlags(cmd: Command): TrainCliOpts {
  const o = cmd.opts<TrainCliOpts>();
  return Object.fromEntries(Object.entries(o).filter(([k]) => !FLAGS.some((f) => f.attr === k) || cmd.getOptionValueSource(k) === 'cli'));
}

/** The examples at the end of `train --help`. */

/** The option for one schema key: its flag, help and (commander-shown) default, its values parsed by the schema. */
function schemaOption(key: TrainOptionKey, flag: string): Option {
  const s = trainOption(key);
  const named = attributeOf(flag) === key ? '' : ` (${key} in --config and --set)`;
  const o = new Option(`--${flag} <${s.value}>`, `${s.help}${named}`).argParser((v: string) => parseOptionString(key, v, `--${flag}`));
  // a null default (no teacher, no init) shows only a computed description; a stored default shows as commander's
  return s.default === undefined || s.default === null ? (s.defaultHelp ? o.default(undefined, s.defaultHelp) : o) : o.default(s.default, s.defaultHelp);
}

function evalLine(e: ValidationRecord): string {
  return `step ${e.step}: val loss ${e.loss.toFixed(4)}, ppl ${e.ppl.toFixed(3)}${e.kl !== undefined ? `, KL ${e.kl.toFixed(4)}` : ''}`;
}

export function registerTrain(program: Command): void {
  // help.ts holds the other commands' examples; train's are kept here, beside the flags they show
  const cmd = program
    .command('train')
    .description('continually train a converted model (align: stage 1, distill: stage 2) or pretrain one from a config')
    .argument('[model]', trainOption('model').help);
  for (const { key, flag } of FLAGS) cmd.addOption(schemaOption(key, flag));
  cmd
    .option('--config <file>', 'training options from a JSON file, e.g. {"lr": 3e-4, "ceWeight": 0.2} (keys: the flags in camelCase); the flags given override it')
    .option('--set <key=value>', 'set one training option by its key or flag name, parsed by its type; repeatable, overrides --config and the flags',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--resume <dir>', 'continue the run saved in this folder exactly, writing into it (or into --out when given)')
    .option('--force', 'start over in an --out that already holds a run')
    .option('--json', 'print a JSON summary')
    .option('--torch-args <args>', 'with --engine torch: engine flags for python, e.g. "--device cuda --precision bf16" (docs/scale.md)')
    .option('--torch-launcher <cmd>', 'with --engine torch: start python through this launcher, e.g. "torchrun --nproc_per_node 8"')
    .action(async (model: string | undefined, _o: TrainCliOpts, self: Command) => {
      const o = givenFlags(self);
      const values = resolveTrainValues(model, o);
      if (!o.resume && values.out === undefined) throw new ArgumentError('train', '--out', 'is required', 'pass --out DIR (or --resume DIR)');
      const torchResume = o.resume !== undefined && existsSync(join(o.resume, 'checkpoint.pt'));
      if (values.engine === 'torch' || torchResume) {
        // the PyTorch engine (python/): same options and data, its own process; it reports progress itself
        const status = runTorchTraining(values, { resume: o.resume, force: o.force, json: o.json, torchArgs: o.torchArgs as string | undefined,
          launcher: o.torchLauncher as string | undefined });
        if (status !== 0) process.exitCode = status;
        else if (values.out !== undefined || o.resume) {
          // the same metrics.jsonl records as this engine's: the same HTML report
          const out = String(values.out ?? o.resume);
          const report = await writeTrainReport(out);
          if (!o.json) process.stdout.write(`report ${report}\n`);
        }
        return;
      }
      const tty = process.stderr.isTTY && !process.env.RECURFORMER_QUIET && !o.json;
      let bar: cliProgress.SingleBar | null = null;
      let tokSec = 0;
      const stop = new AbortController();
      const onSignal = (sig: NodeJS.Signals): void => stop.abort(sig);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const result = await runTraining(values, {
        ...(o.resume ? { resume: o.resume } : {}),
        force: o.force ?? false,
        signal: stop.signal,
        onWarn: (m) => process.stderr.write(`recurformer: warning: ${m}\n`),
        onStep(r, total) {
          if (!tty) return;
          if (!bar) {
            bar = new cliProgress.SingleBar({
              format: 'train [{bar}] {value}/{total} | loss {loss} | {tps} tok/s | eta {eta_formatted}', stream: process.stderr,
            }, cliProgress.Presets.shades_classic);
            bar.start(total, r.step - 1, { loss: '-', tps: '-' });
          }
          if (r.type === 'train') tokSec = tokSec ? 0.9 * tokSec + 0.1 * r.tokPerSec : r.tokPerSec;
          bar.update(r.step, { loss: r.type === 'train' ? r.loss.toFixed(4) : 'skipped', tps: Math.round(tokSec) });
        },
        onEval(e) {
          if (tty && !bar) process.stderr.write(`${evalLine(e)}\n`);
        },
      }).finally(() => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      });
      (bar as cliProgress.SingleBar | null)?.stop();
      const report = await writeTrainReport(result.config.out);
      const summary = {
        out: result.config.out, stage: result.config.stage, steps: result.steps, skipped: result.skipped, tokens: result.tokens,
        resumedFrom: result.resumedFrom, first: result.firstEval, last: result.lastEval, checkpoint: result.checkpoint,
        model: result.modelDir, report, seconds: result.elapsedMs / 1000, interrupted: result.interrupted,
      };
      if (o.json) printJson(summary);
      else {
        if (result.firstEval) process.stdout.write(`before: ${evalLine(result.firstEval)}\n`);
        if (result.lastEval) process.stdout.write(`after:  ${evalLine(result.lastEval)}\n`);
        if (!result.interrupted) {
          process.stdout.write(`${result.steps} steps (${result.skipped} skipped), checkpoint ${result.checkpoint}, model ${result.modelDir}, report ${report}\n`);
        }
      }
      if (result.interrupted) {
        const sig = stop.signal.reason as NodeJS.Signals;
        process.stderr.write(`recurformer: ${sig}: stopped at step ${result.steps} of ${result.config.steps}, checkpoint saved to ${result.checkpoint}\n`
          + `  resume with: recurformer train --resume ${result.config.out}\n`);
        // main() can only return 0 or 1; the shell's convention for a run ended by a signal is 128 + its number
        process.exit(sig === 'SIGTERM' ? 143 : 130);
      }
    });
}
