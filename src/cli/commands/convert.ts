/**
 * `recurformer convert [MODEL] --analysis FILE (--budget F | --threshold X) --out DIR`: plan which KV groups become
 * recurrent (or read an edited plan with --plan), initialize the recurrent heads, write a converted HF folder.
 * Both input files are checked against MODEL's shape; a converted MODEL keeps its recurrent groups (the plan adds to
 * them); the output is written atomically and loaded back before success is reported (convert/write.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { convert, DEFAULT_HEAD_SINKS, DEFAULT_HEAD_WINDOW, type ConvertOptions } from '../../convert/apply.js';
import { REPLACED_KINDS, type ReplacedKind } from '../../model/layout.js';
import { DEFAULT_PROTECT_NATS, planFromAnalysis, type AnalysisLike, type ReplacementPlan } from '../../convert/plan.js';
import { checkAnalysisFile, checkPlanFile, modelShape, parseAnalysis, parsePlan } from '../../convert/validate.js';
import { checkOut, writeConverted } from '../../convert/write.js';
import { storedFloatDtype } from '../../io/model-save.js';
import { parseShardSize } from '../../io/safetensors.js';
import { loadModel, toHalfRope } from '../../io/model-load.js';
import { ArgumentError } from '../../tensor/errors.js';
import { modelPath, packageRoot, parseFloatArg, parseIntArg, printJson, readJsonArg } from '../common.js';
import { computedDefault, modelArgument } from '../help.js';
import { readTextData } from '../text-data.js';

interface Opts {
  analysis?: string;
  plan?: string;
  budget?: string;
  threshold?: string;
  score: string;
  window: string;
  minKeep: string;
  never: string;
  protectRetrieval?: string;
  init: string;
  data?: string;
  calib?: string;
  dtype?: string;
  maxShardSize?: string;
  calibTokens: string;
  chunk?: string;
  headKind?: string;
  headWindow?: string;
  headSinks?: string;
  out: string;
  force?: boolean;
  json?: boolean;
}

export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('replace recency-aware KV groups by recurrent heads (plan from analysis.json, init, write the model)')
    .addArgument(modelArgument())
    .option('--analysis <file>', 'analysis.json written by `recurformer analyze`')
    .option('--plan <file>', 'use this (possibly hand-edited) plan instead of planning from --analysis')
    .option('--budget <f>', 'fraction of all KV groups to replace, most recency-aware first')
    .option('--threshold <x>', 'replace every group whose score is at least x')
    .option('--score <s>', 'rr or rrw (waiver-adjusted)', 'rr')
    .option('--window <k>', 'recency window whose score decides', '16')
    .option('--min-keep <m>', 'keep at least m attention groups per layer', '0')
    .option('--never <layers>', 'comma-separated layers never replaced', '')
    .addOption(computedDefault('--protect-retrieval <nats>', 'keep groups whose windowing costs passkey retrieval at least this many nats, or none',
      `${DEFAULT_PROTECT_NATS} when the analysis has a retrieval probe`))
    .option('--init <how>', 'attention (reuse W_q/W_k/W_v) or random', 'attention')
    .addOption(computedDefault('--head-kind <kind>', 'recurrent (a recurrent head per replaced head, the paper\'s) or recurrent+window (an exact window ' +
      'of sinks + recent tokens for softmax attention plus a recurrent head for the rest)', 'recurrent, or the converted model\'s'))
    .addOption(computedDefault('--head-window <w>', 'recurrent+window: recent tokens each replaced group keeps exactly', `${DEFAULT_HEAD_WINDOW}`))
    .addOption(computedDefault('--head-sinks <n>', 'recurrent+window: first tokens each replaced group keeps exactly', `${DEFAULT_HEAD_SINKS}`))
    .addOption(computedDefault('--data <path>', 'text for the output-scale fit: a text file, a .jsonl file or a folder of them', 'the bundled TinyStories excerpt'))
    .option('--calib <path>', 'deprecated name of --data')
    .option('--calib-tokens <n>', 'calibration tokens', '1024')
    .addOption(computedDefault('--chunk <n>', 'SSD chunk length for prefill', '64, or the converted model\'s'))
    .requiredOption('--out <dir>', 'output folder (Hugging Face layout with a recurformer section)')
    .option('--dtype <d>', 'weights written: keep (the source\'s F32/F16/BF16), F32, F16 or BF16 (the recurrent heads stay F32: they are trained next)', 'keep')
    .option('--max-shard-size <size>', 'largest safetensors file; bigger models are sharded with an index (bytes, or e.g. 2GB)', '2GB')
    .option('--force', 'replace the model already in --out')
    .option('--json', 'print a JSON summary')
    .action((model: string | undefined, o: Opts) => {
      let lm = loadModel(modelPath(model)); // a train run folder means its model/
      if (lm.config.ropeStyle === 'interleaved') lm = toHalfRope(lm);
      const cfg = lm.config;
      checkOut(o.out, o.force ?? false); // before the work, not after it
      const dtype = outputDtype(o.dtype, lm);
      parseShardSize(o.maxShardSize ?? '2GB'); // a bad flag fails before the work
      let plan: ReplacementPlan;
      let analysis: AnalysisLike | null = null;
      if (o.plan) {
        plan = parsePlan(readJsonArg(o.plan, 'convert', '--plan'), o.plan);
        checkPlanFile(plan, cfg, o.plan);
      } else {
        if (!o.analysis) throw new ArgumentError('convert', '--analysis', 'is required (or pass --plan)', 'run `recurformer analyze` first');
        analysis = parseAnalysis(readJsonArg(o.analysis, 'convert', '--analysis'), o.analysis);
        checkAnalysisFile(analysis, cfg, o.analysis);
        if ((o.budget === undefined) === (o.threshold === undefined)) {
          throw new ArgumentError('convert', '--budget/--threshold', 'exactly one is required');
        }
        if (o.score !== 'rr' && o.score !== 'rrw') throw new ArgumentError('convert', '--score', `${o.score} is not rr or rrw`);
        plan = planFromAnalysis(analysis, cfg.nLayers, cfg.nKvHeads, {
          score: o.score, window: parseIntArg('--window', o.window, 1),
          ...(o.budget !== undefined ? { budget: parseFloatArg('--budget', o.budget) } : { threshold: parseFloatArg('--threshold', o.threshold!) }),
          minKeepPerLayer: parseIntArg('--min-keep', o.minKeep),
          neverLayers: o.never ? o.never.split(',').map((x) => parseIntArg('--never', x.trim())) : [],
          ...(o.protectRetrieval === undefined ? {}
            : { protectRetrieval: o.protectRetrieval === 'none' ? null : parseFloatArg('--protect-retrieval', o.protectRetrieval) }),
        });
      }
      if (o.init !== 'attention' && o.init !== 'random') throw new ArgumentError('convert', '--init', `${o.init} is not attention or random`);
      const kind = headKindArgs(o, plan.head);
      // --data is the calibration text's name in every command; --calib, its old name here, still works
      if (o.data !== undefined && o.calib !== undefined) throw new ArgumentError('convert', '--calib', 'is the old name of --data', 'pass only --data');
      if (o.calib !== undefined) process.stderr.write('recurformer: warning: --calib is deprecated; use --data\n');
      const calibFlag = o.calib !== undefined ? '--calib' : '--data', calibArg = o.data ?? o.calib;
      const calibPath = calibArg ?? join(packageRoot(), 'data', 'tinystories-valid-excerpt', 'tinystories_val.txt');
      let calibration: Int32Array | undefined;
      // the output-scale fit is what makes an attention-initialized head usable: never skip it without a word
      if (calibArg !== undefined && !existsSync(calibArg)) {
        throw new ArgumentError('convert', calibFlag, `${calibArg} does not exist`, 'pass a text file in the model\'s domain');
      }
      const calibWarning = o.init !== 'attention' ? null
        : !lm.tokenizer ? 'the model has no tokenizer, so the output scales are not fitted (pass a model folder with its tokenizer)'
          : !existsSync(calibPath) ? `the default calibration text ${calibPath} is missing, so the output scales are not fitted (pass --data PATH)` : null;
      if (calibWarning) process.stderr.write(`recurformer: warning: ${calibWarning}\n`);
      if (lm.tokenizer && existsSync(calibPath)) {
        const n = Math.min(parseIntArg('--calib-tokens', o.calibTokens, 2), cfg.maxPos);
        const text = readTextData('convert', calibFlag, calibPath, { maxChars: n * 8 });
        calibration = Int32Array.from(lm.tokenizer.encode(text.slice(0, n * 8), { bos: true }).slice(0, n));
      }
      // effective memory per head from the analysis' mean attention distance (geometric weights: m = mean + 1)
      const memory = new Map<string, number>();
      for (const h of analysis?.heads ?? []) if (typeof h.meanDistance === 'number') memory.set(`${h.layer}.${h.head}`, h.meanDistance + 1);
      const conv = convert(lm, plan, {
        init: o.init, ...(o.chunk !== undefined ? { chunk: parseIntArg('--chunk', o.chunk, 1) } : {}), memory, ...(calibration ? { calibration } : {}),
        ...kind,
      });
      // the plan written beside the model records its shape and every recurrent group, the earlier ones included
      const { schema, version, model: _shape, earlier: _stale, ...rest } = plan;
      const earlier = lm.recurformer?.layers ?? [];
      const r = conv.recurformer;
      const written: ReplacementPlan = {
        schema, version, model: modelShape(cfg), ...rest, layers: r.layers, ...(earlier.length ? { earlier } : {}),
        head: { kind: r.kind ?? 'recurrent', ...(r.kind === 'recurrent+window' ? { window: r.window, sinks: r.sinks } : {}) },
      };
      writeConverted(o.out, conv, written, { force: o.force ?? false, dtype, maxShardBytes: parseShardSize(o.maxShardSize ?? '2GB') });
      const replaced = written.layers.reduce((s, l) => s + l.groups.length, 0);
      const summary = {
        out: o.out, replacedGroups: replaced, totalGroups: cfg.nLayers * cfg.nKvHeads, layers: written.layers, init: o.init,
        headKind: conv.recurformer.kind ?? 'recurrent',
        ...(conv.recurformer.kind === 'recurrent+window' ? { headWindow: conv.recurformer.window, headSinks: conv.recurformer.sinks } : {}),
        calibrated: calibration !== undefined && o.init === 'attention', dtype,
        ...(earlier.length ? { earlier } : {}), ...(plan.protected ? { protected: plan.protected } : {}),
      };
      if (o.json) printJson(summary);
      else {
        const before = earlier.reduce((s, l) => s + l.groups.length, 0);
        const kept = plan.protected?.groups ?? [];
        const how = summary.headKind === 'recurrent+window' ? `recurrent+window (${summary.headSinks} sinks + ${summary.headWindow} recent tokens kept exactly)` : 'recurrent';
        process.stdout.write(`wrote ${o.out}: ${replaced} of ${summary.totalGroups} KV groups ${how} (init ${o.init}${before ? `; ${before} were already` : ''}); ` +
          `plan in ${join(o.out, 'plan.json')}\n` +
          (kept.length ? `kept for retrieval (probe harm >= ${plan.protected!.threshold} nats): ${kept.map((g) => `L${g.layer} g${g.kvGroup}`).join(', ')}\n` : ''));
      }
    });
}

/** The dtype convert writes: the source's own by default (a BF16 checkpoint stays BF16), or the one asked for. */
export function outputDtype(flag: string | undefined, lm: { tensors: ReadonlyMap<string, { dtype: string; shape: readonly number[] }> }): 'F32' | 'F16' | 'BF16' {
  const d = (flag ?? 'keep').toUpperCase();
  if (d === 'F32' || d === 'F16' || d === 'BF16') return d;
  if (d !== 'KEEP') throw new ArgumentError('convert', '--dtype', `= ${flag} is not keep, F32, F16 or BF16`);
  return storedFloatDtype(lm.tensors);
}

/**
 * --head-kind, --head-window and --head-sinks as convert options (convert checks them against a converted model's);
 * a plan convert wrote supplies the ones the flags leave out, unless --head-kind names another kind.
 */
function headKindArgs(o: Opts, fromPlan: ReplacementPlan['head']): Pick<ConvertOptions, 'kind' | 'headWindow' | 'headSinks'> {
  if (o.headKind !== undefined && !REPLACED_KINDS.includes(o.headKind as ReplacedKind)) {
    throw new ArgumentError('convert', '--head-kind', `${o.headKind} is not one of ${REPLACED_KINDS.join(', ')}`);
  }
  const plan = fromPlan && (o.headKind === undefined || o.headKind === fromPlan.kind) ? fromPlan : undefined;
  const kind = (o.headKind as ReplacedKind | undefined) ?? plan?.kind;
  const window = o.headWindow !== undefined ? parseIntArg('--head-window', o.headWindow, 1) : plan?.window;
  const sinks = o.headSinks !== undefined ? parseIntArg('--head-sinks', o.headSinks, 0) : plan?.sinks;
  return { ...(kind !== undefined ? { kind } : {}), ...(window !== undefined ? { headWindow: window } : {}), ...(sinks !== undefined ? { headSinks: sinks } : {}) };
}
