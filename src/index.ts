/**
 * recurformer's library API. The CLI (src/cli) is a thin shell over these functions.
 *
 *   const lm = loadModel('models/stories260K');          // HF folder, .gguf or llama2.c .bin
 *   const model = buildModel(lm);                         // DecoderLM on the tensor engine
 *   generate(model, lm.tokenizer!, 'Once upon a time', { maxTokens: 50, temperature: 0 }).text;
 */
export * as tensor from './tensor/index.js';
export { loadModel, type LoadedModel, type LoadOptions } from './io/model-load.js';
export { writeHfFolder, writeGgufModel } from './io/model-save.js';
export { loadTokenizer } from './io/tokenizer-load.js';
export type { Tokenizer } from './io/tokenizer.js';
export type { ModelConfig } from './model/config.js';
export { buildModel, type BuildOptions } from './io/build.js';
export { DecoderLM, type ForwardOpts } from './model/transformer.js';
export { TapRecorder, type TapSink } from './model/taps.js';
export { recurrentChunked, recurrentStep, type RecurrentDims, type RecurrentParams, type RecurrentState } from './model/recurrent-head.js';
export { generate, generateIds, promptIds, fullMemory, type GenerateOpts, type GenerateResult } from './inference/generate.js';
// step-wise decoding: stream tokens from async code, interleave sessions, cancel between tokens (docs/library.md)
export { DecodeSession, generateAsync, type SessionOpts, type StepEvent } from './inference/session.js';
export { Sampler, type SamplerOpts } from './inference/sampler.js';
export {
  HybridMemory, MemoryError, streamingMemory, streamingHeadsMemory, fullAttentionBytes, type MemorySnapshot, type MemoryOpts,
} from './inference/hybrid-memory.js';
export { Layout, type LayerLayout, type GroupKind, type WindowOpts } from './model/layout.js';
export { perplexity, perplexityOfIds, slidingPerplexity, type PplResult, type PplOpts } from './eval/perplexity.js';
export { agreement, type AgreeResult, type AgreeOpts } from './eval/agree.js';
export { cost, type CostResult, type CostOpts, type CacheLayout } from './eval/cost.js';
export { evalRecord, type EvalRecord, type EvalTask } from './eval/record.js';
export { renderEvalReport, checkEvalRecord } from './report/eval-report.js';
export { evalRetrieval, modelPredictor, type Predictor, type RetrievalOpts, type RetrievalTask } from './eval/retrieval.js';
export { analyze, parseWindows, type AnalyzeSettings } from './analysis/analyze.js';
export type { Analysis } from './analysis/schema.js';
export { probeRetrieval, defaultProbeLength, DEFAULT_PROBE, type ProbeSettings, type RetrievalProbe } from './eval/retrieval-probe.js';
export { writeAnalysis } from './report/write.js';
export { planFromAnalysis, type ReplacementPlan, type PlanOptions } from './convert/plan.js';
export { convert, type ConvertOptions, type ConvertedModel } from './convert/apply.js';
export type { RecurformerSpec } from './model/layout.js';
// where the package's bundled models and data are, wherever it is installed
export { defaultModelPath, packageRoot } from './cli/common.js';
