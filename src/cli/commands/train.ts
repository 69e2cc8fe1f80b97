/**
 * `recurformer train [MODEL] --data PATH --out DIR [--stage align|distill|pretrain] [--teacher MODEL] [--init CONFIG]
 * [--resume DIR] ...`: options -> TrainConfig -> runTraining -> report. Progress (loss, tokens/s, ETA) on stderr when
 * it is a terminal; every step and validation in DIR/metrics.jsonl; loss curves in DIR/report.html.
 *
 * SIGINT / SIGTERM end the run after the current step with a checkpoint; the command then says how to resume and
 * exits 130 / 143 (128 + the signal's number, as a shell reports a killed command). A second signal kills at once
 * (the handlers are one-shot); the checkpoint on disk stays intact since it is replaced atomically.
 */
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { ArgumentError } from '../../tensor/errors.js';
import { runTraining, type EvalRecord } from '../../train/loop.js';
import { writeTrainReport } from '../../train/report.js';
import { modelPath, parseFloatArg, parseIntArg, printJson } from '../common.js';

export interface TrainCliOpts {
  teacher?: string;
  data?: string;
  stage?: string;
  init?: string;
  tokenizer?: string;
  steps?: string;
  batch?: string;
  seq?: string;
  lr?: string;
  minLr?: string;
  warmup?: string;
  accum?: string;
  clip?: string;
  weightDecay?: string;
  temperature?: string;
  ceWeight?: string;
  klFocus?: string;
  hiddenWeight?: string;
  trainable?: string;
  evalEvery?: string;
  evalBatches?: string;
  saveEvery?: string;
  valFraction?: string;
  packing?: string;
  textKey?: string;
  cache?: string;
  seed?: string;
  out?: string;
  resume?: string;
  force?: boolean;
  json?: boolean;
}

/** Pure: CLI strings -> the config values they set (undefined where a flag was not given). */
/** A train run folder given as a model means its model/ (as every command reads it); absent stays absent. */
const runModel = (p: string | undefined): string | undefined => (p === undefined ? undefined : modelPath(p));

export function trainValuesFromCli(model: string | undefined, o: TrainCliOpts): Record<string, unknown> {
  const int = (n: string, v: string | undefined, min = 0): number | undefined => (v === undefined ? undefined : parseIntArg(n, v, min));
  const num = (n: string, v: string | undefined): number | undefined => (v === undefined ? undefined : parseFloatArg(n, v));
  const v: Record<string, unknown> = {
    stage: o.stage ?? (o.init ? 'pretrain' : undefined), model: runModel(model), teacher: runModel(o.teacher), init: o.init, tokenizer: o.tokenizer, data: o.data, textKey: o.textKey,
    cacheDir: o.cache, valFraction: num('--val-fraction', o.valFraction), packing: o.packing, steps: int('--steps', o.steps, 1),
    batch: int('--batch', o.batch, 1), seq: int('--seq', o.seq, 1), accum: int('--accum', o.accum, 1), lr: num('--lr', o.lr),
    minLrRatio: num('--min-lr', o.minLr), warmup: int('--warmup', o.warmup), clip: num('--clip', o.clip),
    weightDecay: num('--weight-decay', o.weightDecay), temperature: num('--temperature', o.temperature),
    ceWeight: num('--ce-weight', o.ceWeight), klFocus: num('--kl-focus', o.klFocus),
    hiddenWeight: num('--hidden-weight', o.hiddenWeight), trainable: o.trainable, evalEvery: int('--eval-every', o.evalEvery),
    evalBatches: int('--eval-batches', o.evalBatches, 1), saveEvery: int('--save-every', o.saveEvery), seed: int('--seed', o.seed),
    out: o.out ?? o.resume,
  };
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined));
}

function evalLine(e: EvalRecord): string {
  return `step ${e.step}: val loss ${e.loss.toFixed(4)}, ppl ${e.ppl.toFixed(3)}${e.kl !== undefined ? `, KL ${e.kl.toFixed(4)}` : ''}`;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('continually train a converted model (align: stage 1, distill: stage 2) or pretrain one from a config')
    .argument('[model]', 'the student: a converted model (align/distill) or a model to keep pretraining')
    .option('--teacher <model>', 'the original model (align/distill)')
    .option('--data <path>', 'a text file, a .jsonl file or a folder of them')
    .option('--stage <s>', 'align | distill | pretrain (default distill; pretrain with --init)')
    .option('--init <config>', 'pretrain a fresh model with this HF config.json')
    .option('--tokenizer <path>', 'tokenizer for --init (default: MODEL\'s)')
    .option('--steps <n>', 'optimizer steps (default 200)')
    .option('--batch <b>', 'sequences per micro-batch (default 8)')
    .option('--seq <t>', 'tokens per sequence (default 128)')
    .option('--accum <n>', 'micro-batches per step (default 1)')
    .option('--lr <x>', 'peak learning rate (default 3e-3)')
    .option('--min-lr <r>', 'final learning rate as a fraction of --lr (default 0.1)')
    .option('--warmup <n>', 'linear warmup steps (default 20)')
    .option('--clip <x>', 'global gradient-norm clip, 0 = off (default 1)')
    .option('--weight-decay <x>', 'AdamW weight decay on matrices (default 0)')
    .option('--temperature <x>', 'distillation temperature (default 1)')
    .option('--ce-weight <x>', 'weight of the data cross-entropy added to distillation (default 0)')
    .option('--kl-focus <gamma>', 'weight each position\'s KL by (KL / mean KL)^gamma, so the worst-imitated tokens count most (default 0: plain mean)')
    .option('--hidden-weight <x>', 'weight of the residual-stream match added to distillation: each block after the first converted one gets the teacher\'s input (relative squared error, default 0)')
    .option('--trainable <set>', 'recurrent | recurrent+norms | all (default recurrent; all for pretrain)')
    .option('--eval-every <n>', 'validate every n steps, 0 = only at the ends (default 50)')
    .option('--eval-batches <n>', 'validation batches (default 8)')
    .option('--save-every <n>', 'checkpoint every n steps, 0 = only at the end (default 100)')
    .option('--val-fraction <f>', 'held-out fraction at the end of the data (default 0.1)')
    .option('--packing <p>', 'stream | document: sequences start anywhere, or at document starts so long documents are seen whole (default stream)')
    .option('--text-key <k>', 'JSONL text field (default text)')
    .option('--cache <dir>', 'token shard cache (default OUT/cache)')
    .option('--seed <n>', 'data order and init seed (default 0)')
    .option('--out <dir>', 'run folder: checkpoint.bin, metrics.jsonl, report.html, model/')
    .option('--resume <dir>', 'continue the run saved in this folder exactly, writing into it (or into --out when given)')
    .option('--force', 'start over in an --out that already holds a run')
    .option('--json', 'print a JSON summary')
    .action(async (model: string | undefined, o: TrainCliOpts) => {
      if (!o.resume && !o.out) throw new ArgumentError('train', '--out', 'is required', 'pass --out DIR (or --resume DIR)');
      const values = trainValuesFromCli(model, o);
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
