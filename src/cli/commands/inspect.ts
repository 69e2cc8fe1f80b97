/**
 * `recurformer inspect [MODEL]`: architecture, parameter count, weight bytes, KV bytes per token. Reads the model's
 * headers only (loading is lazy), so it is instant on any size of model. `--check-weights` also reads every tensor
 * and lists those holding NaN or Inf, failing (exit 1) when there are any.
 */
import type { Command } from 'commander';
import { FormatError } from '../../tensor/errors.js';
import { ITEM_SIZE } from '../../io/tensor-file.js';
import { modelPath, printJson } from '../common.js';
import { modelArgument } from '../help.js';
import { findNonFiniteWeights, loadModel } from '../../io/model-load.js';
import { cacheProfile } from '../../eval/budget.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('describe a model: architecture, parameters, bytes of weights, KV cache bytes per token')
    .addArgument(modelArgument())
    .option('--json', 'print JSON')
    .option('--check-weights', 'read every tensor and list those holding NaN or Inf (exit 1 if any)')
    .action((model: string | undefined, o: { json?: boolean; checkWeights?: boolean }) => {
      const path = modelPath(model);
      const lm = loadModel(path);
      const c = lm.config;
      // bytes as the weights are held: GGUF matrices in Q8_0/Q4_K/Q5_K/Q6_K stay in their blocks
      let params = 0, weightBytes = 0;
      const weightTypes: Record<string, number> = {};
      for (const t of lm.tensors.values()) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        params += n;
        weightBytes += t.quant ? t.quant.bytes : n * ITEM_SIZE[t.dtype];
        const type = t.quant?.kind ?? t.dtype;
        weightTypes[type] = (weightTypes[type] ?? 0) + 1;
      }
      // float32 cache: keys and values of every kept KV head of every layer; recurrent heads hold a constant state
      const spec = lm.recurformer;
      const cache = cacheProfile(c, spec);
      const replacedGroups = [...cache.groups.values()].reduce((s, g) => s + g.length, 0);
      const { kvBytesPerToken, constantBytes: constantStateBytes } = cache;
      const recurrentHeads = replacedGroups * (c.nHeads / c.nKvHeads);
      const info = {
        source: lm.source, format: lm.format, arch: c.arch, params, weightBytes, weightTypes, kvBytesPerToken,
        attentionHeads: c.nLayers * c.nHeads - recurrentHeads, recurrentHeads, constantStateBytes,
        headKind: spec ? spec.kind ?? 'recurrent' : null,
        ...(spec?.kind === 'recurrent+window' ? { headWindow: spec.window, headSinks: spec.sinks } : {}),
        fullKvBytesPerToken: cache.fullKvBytesPerToken,
        layers: c.nLayers, dModel: c.dModel, heads: c.nHeads, kvHeads: c.nKvHeads, headDim: c.headDim, ffnDim: c.ffnDim,
        vocab: c.vocabSize, context: c.maxPos, rope: c.ropeStyle, ropeTheta: c.ropeTheta, tiedEmbeddings: c.tiedEmbeddings,
        tokenizer: lm.tokenizerSource, // without reading it (a Llama 3 tokenizer.json takes a second)
      };
      const check = o.checkWeights ? findNonFiniteWeights(path) : null;
      if (o.json) {
        printJson(check ? { ...info, checkedTensors: check.checked, nonFiniteTensors: check.bad } : info);
      } else {
        const rows: [string, string][] = [
          ['model', `${info.source} (${info.format})`],
          ['architecture', `${c.arch}: ${c.nLayers} layers, d_model ${c.dModel}, ${c.nHeads} heads / ${c.nKvHeads} KV heads of ${c.headDim}, ffn ${c.ffnDim}`],
          ['vocabulary / context', `${c.vocabSize} / ${c.maxPos}`],
          ['parameters', params.toLocaleString('en-US')],
          ['weight bytes', `${weightBytes.toLocaleString('en-US')} (${Object.entries(weightTypes).map(([k, v]) => `${v} ${k}`).join(', ')})`],
          ['KV bytes per token', `${kvBytesPerToken.toLocaleString('en-US')} (float32)${spec ? ` of ${info.fullKvBytesPerToken.toLocaleString('en-US')} before conversion` : ''}`],
          ['heads', `${info.attentionHeads} attention, ${recurrentHeads} ${info.headKind ?? 'recurrent'}${spec?.kind === 'recurrent+window' ? ` (exact window ${spec.sinks} sinks + ${spec.window} recent tokens)` : ''} (constant ${spec?.kind === 'recurrent+window' ? 'state + full windows' : 'state'} ${constantStateBytes.toLocaleString('en-US')} bytes)`],
          ['positions', c.ropeStyle === 'none' ? 'learned absolute' : `RoPE ${c.ropeStyle}, theta ${c.ropeTheta}`],
        ];
        if (check) rows.push(['weights', check.bad.length === 0 ? `all ${check.checked} tensors finite` : `${check.bad.length} of ${check.checked} tensors hold NaN or Inf:`]);
        for (const [k, v] of rows) process.stdout.write(`${k.padEnd(22)}${v}\n`);
        for (const b of check?.bad ?? []) process.stdout.write(`  ${b.file}: tensor '${b.tensor}': ${b.count} of ${b.total} values NaN or Inf\n`);
      }
      if (check && check.bad.length > 0) {
        throw new FormatError(path, `${check.bad.length} of ${check.checked} tensors hold NaN or Inf values`,
          'the weights are corrupt (a bad download, conversion or training run); fetch or export them again');
      }
    });
}
