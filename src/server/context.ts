/** What every route handler needs: the model, its tokenizer and chat template, the limits, the scheduler and the metrics. */
import type { Tokenizer } from '../io/tokenizer.js';
import type { DecoderLM } from '../model/transformer.js';
import type { ChatTemplate } from './chat-template.js';
import type { Metrics } from './metrics.js';
import type { Scheduler, TurnQueue } from './scheduler.js';

export interface ServerContext {
  readonly model: DecoderLM;
  readonly tokenizer: Tokenizer;
  readonly chatTemplate: ChatTemplate;
  /** The name clients pass as `model` (the model folder's or file's base name). */
  readonly modelId: string;
  /** Longest prompt text (completion prompt, or chat message contents together) accepted for tokenizing. */
  readonly maxPromptChars: number;
  /** Message contents are tokenized as plain text (special tokens in them stay characters). */
  readonly plainContent: boolean;
  readonly scheduler: Scheduler;
  /** Prompts are rendered and tokenized through it, one per event-loop turn. */
  readonly prepare: TurnQueue;
  readonly metrics: Metrics;
}
