/** `recurformer inspect [MODEL]`: architecture, parameter count, weight bytes, KV bytes per token. */
import type { Command } from 'commander';
import { ITEM_SIZE } from '../../io/tensor-file.js';
import { defaultModelPath, printJson } from '../common.js';
import { loadModel } from '../../io/model-load.js';
import { cacheProfile } from '../../eval/budget.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('describe a model: architecture, parameters, bytes of weights, KV cache bytes per token')
    .argument('[model]', 'Hugging Face folder, .gguf or llama2.c .bin (default: bundled stories260K)')
    .option('--json', 'print JSON')
    .action((model: string | undefined, o: { json?: boolean }) => {
      const lm = loadModel(model ?? defaultModelPath());
      const c = lm.config;
      let params = 0, weightBytes = 0;
      for (const t of lm.tensors.values()) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        params += n;
        weightBytes += n * ITEM_SIZE[t.dtype];
      }
      // float32 cache: keys and values of every kept KV head of every layer; recurrent heads hold a constant state
      const spec = lm.recurformer;
      const cache = cacheProfile(c, spec);
      const replacedGroups = [...cache.groups.values()].reduce((s, g) => s + g.length, 0);
      const { kvBytesPerToken, constantBytes: constantStateBytes } = cache;
      const recurrentHeads = replacedGroups * (c.nHeads / c.nKvHeads);
      const info = {
        source: lm.source, format: lm.format, arch: c.arch, params, weightBytes, kvBytesPerToken,
        attentionHeads: c.nLayers * c.nHeads - recurrentHeads, recurrentHeads, constantStateBytes,
        fullKvBytesPerToken: cache.fullKvBytesPerToken,
        layers: c.nLayers, dModel: c.dModel, heads: c.nHeads, kvHeads: c.nKvHeads, headDim: c.headDim, ffnDim: c.ffnDim,
        vocab: c.vocabSize, context: c.maxPos, rope: c.ropeStyle, ropeTheta: c.ropeTheta, tiedEmbeddings: c.tiedEmbeddings,
        tokenizer: lm.tokenizer ? lm.tokenizerSource : null,
      };
      if (o.json) {
        printJson(info);
        return;
      }
      const rows: [string, string][] = [
        ['model', `${info.source} (${info.format})`],
        ['architecture', `${c.arch}: ${c.nLayers} layers, d_model ${c.dModel}, ${c.nHeads} heads / ${c.nKvHeads} KV heads of ${c.headDim}, ffn ${c.ffnDim}`],
        ['vocabulary / context', `${c.vocabSize} / ${c.maxPos}`],
        ['parameters', params.toLocaleString('en-US')],
        ['weight bytes', weightBytes.toLocaleString('en-US')],
        ['KV bytes per token', `${kvBytesPerToken.toLocaleString('en-US')} (float32)${spec ? ` of ${info.fullKvBytesPerToken.toLocaleString('en-US')} before conversion` : ''}`],
        ['heads', `${info.attentionHeads} attention, ${recurrentHeads} recurrent (constant state ${constantStateBytes.toLocaleString('en-US')} bytes)`],
        ['positions', c.ropeStyle === 'none' ? 'learned absolute' : `RoPE ${c.ropeStyle}, theta ${c.ropeTheta}`],
      ];
      for (const [k, v] of rows) process.stdout.write(`${k.padEnd(22)}${v}\n`);
    });
}
