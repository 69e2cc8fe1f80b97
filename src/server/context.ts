/** What every route handler needs: the model, its tokenizer and chat template, the scheduler and the metrics. */
import type { Tokenizer } from '../io/tokenizer.js';
import type { DecoderLM } from '../model/transformer.js';
import type { ChatTemplate } from './chat-template.js';
import type { Metrics } from './metrics.js';
import type { Scheduler } from './scheduler.js';

export interface ServerContext {
  readonly model: DecoderLM;
  readonly tokenizer: Tokenizer;
  readonly chatTemplate: ChatTemplate;
  /** The name clients pass as `model` (the model folder's or file's base name). */
  readonly modelId: string;
  readonly scheduler: Scheduler;
  readonly metrics: Metrics;
}
