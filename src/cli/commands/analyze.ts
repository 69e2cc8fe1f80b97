/** `recurformer analyze [MODEL] --data FILE --out DIR`: per-head recency, sink and waiver analysis -> JSON + HTML. */
import type { Command } from 'commander';
import { analyze, parseWindows } from '../../analysis/analyze.js';
import { checkProbeSettings, DEFAULT_PROBE, defaultProbeLength, probeRetrieval, type ProbeSettings, type RetrievalProbe } from '../../eval/retrieval-probe.js';
import { renderReport } from '../../report/html.js';
import { writeAnalysisFiles } from '../../report/write.js';
import { TokenizerError } from '../../tensor/errors.js';
import { defaultModelPath, load, parseIntArg, printJson, progress } from '../common.js';
import { computedDefault, modelArgument } from '../help.js';
import { prepareOutDir, writingTo } from '../output.js';
import { addTextKeyOption, readTextData } from '../text-data.js';

interface AnalyzeOpts {
  data: string;
  textKey: string;
  samples: string;
  seq: string;
  windows: string;
  seed: string;
  out: string;
  json?: boolean;
  retrievalProbe?: boolean;
  probeLength?: string;
  probeSamples?: string;
  probeWindow?: string;
}

/** The groups whose windowing hurts retrieval most (at most 5). */
function topHarm(p: RetrievalProbe): RetrievalProbe['groups'] {
  return [...p.groups].sort((x, y) => y.harm - x.harm).slice(0, 5);
}

export function registerAnalyze(program: Command): void {
  addTextKeyOption(program.command('analyze')
    .description('find recency-aware heads and explain the attention sink: writes DIR/analysis.json and DIR/report.html')
    .addArgument(modelArgument())
    .requiredOption('--data <path>', 'calibration text: a text file, a .jsonl file or a folder of them (as for train)'))
    .option('--samples <n>', 'number of calibration samples', '16')
    .option('--seq <t>', 'tokens per sample (BOS first)', '256')
    .option('--windows <list>', 'recency windows k, comma-separated', '4,16,64')
    .option('--seed <s>', 'sampling seed', '0')
    .requiredOption('--out <dir>', 'output folder (created when missing)')
    .option('--retrieval-probe', 'also measure, per KV group, what passkey retrieval loses when the group keeps only sinks + a window (DuoAttention\'s retrieval heads); convert then keeps the groups retrieval needs')
    .addOption(computedDefault('--probe-length <t>', 'retrieval probe: prompt tokens', '1024, or the context less 16'))
    .option('--probe-samples <n>', `retrieval probe: prompts per key depth (${DEFAULT_PROBE.depths.join(', ')})`, String(DEFAULT_PROBE.samples))
    .option('--probe-window <n>', 'retrieval probe: recent tokens the ablated group keeps (plus 4 sinks)', String(DEFAULT_PROBE.window))
    .option('--json', 'print a JSON summary on stdout')
    .action(async (model: string | undefined, o: AnalyzeOpts) => {
      const text = readTextData('analyze', '--data', o.data, { textKey: o.textKey });
      prepareOutDir('analyze', '--out', o.out); // before the analysis, so its result cannot be lost for want of a folder
      const settings = {
        samples: parseIntArg('--samples', o.samples, 1), seq: parseIntArg('--seq', o.seq, 1),
        windows: parseWindows(o.windows), seed: parseIntArg('--seed', o.seed, 0), dataName: o.data,
        source: model ?? defaultModelPath(),
      };
      const { loaded, model: lm } = load(model);
      if (!loaded.tokenizer) throw new TokenizerError('the model has no tokenizer', 'use a model folder with tokenizer.json', loaded.source);
      const ids = loaded.tokenizer.encode(text, { bos: false });
      let probe: ProbeSettings | null = null;
      if (o.retrievalProbe) {
        probe = {
          ...DEFAULT_PROBE, seed: settings.seed,
          length: o.probeLength !== undefined ? parseIntArg('--probe-length', o.probeLength, 1) : defaultProbeLength(lm.cfg.maxPos),
          samples: parseIntArg('--probe-samples', o.probeSamples ?? String(DEFAULT_PROBE.samples), 1),
          window: parseIntArg('--probe-window', o.probeWindow ?? String(DEFAULT_PROBE.window), 1),
        };
        checkProbeSettings(lm, probe); // before the long analysis, not after it
      }
      const bar = progress('analyze', settings.samples + 1);
      let a;
      try {
        a = analyze(lm, ids, settings, (d) => bar.update(d));
      } finally {
        bar.stop();
      }
      if (probe) {
        const pbar = progress('retrieval probe', probe.depths.length * probe.samples * (1 + lm.cfg.nLayers * lm.cfg.nKvHeads));
        try {
          a.retrieval = probeRetrieval(lm, loaded.tokenizer, probe, (d) => pbar.update(d));
        } finally {
          pbar.stop();
        }
        if (a.retrieval.baseline.accuracy < 0.5) {
          process.stderr.write(`recurformer: note: with full attention the model answers only ${Math.round(a.retrieval.baseline.accuracy * 100)}% ` +
            'of the probe\'s pass keys, so the probe says little about which groups retrieval needs (a shorter --probe-length may help)\n');
        }
      }
      const page = await renderReport(a);
      const files = writingTo('analyze', '--out', o.out, () => writeAnalysisFiles(o.out, a, page));
      const k = String(settings.windows[0]);
      const top = [...a.heads].sort((x, y) => (y.rrw[k] ?? -1) - (x.rrw[k] ?? -1)).slice(0, 5);
      if (o.json) {
        printJson({
          ...files, mechanism: a.waiver.mechanism, lean: a.waiver.lean, topHeads: top.map((h) => ({ layer: h.layer, head: h.head, rrw: h.rrw[k] })),
          ...(a.retrieval ? { retrievalGroups: topHarm(a.retrieval) } : {}),
        });
      } else {
        process.stdout.write(`wrote ${files.json} and ${files.html}\nwaiver mechanism: ${a.waiver.mechanism} (lean ${a.waiver.lean})\n` +
          `most recency-aware heads by RRw(${k}): ${top.map((h) => `L${h.layer}h${h.head} ${(h.rrw[k] ?? 0).toFixed(3)}`).join(', ')}\n` +
          (a.retrieval ? `groups retrieval needs most (answer NLL increase when windowed): ${
            topHarm(a.retrieval).map((g) => `L${g.layer} g${g.kvGroup} +${g.harm.toFixed(3)}`).join(', ')}\n` : ''));
      }
    });
}
