/** The --memory flag shared by generate and eval: which attention memory runs, and the baseline's budget. */
import type { Command } from 'commander';
import { fullMemory } from '../inference/generate.js';
import { StreamingMemory, type AttentionMemory } from '../inference/memory.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { parseIntArg } from './common.js';

export interface MemoryFlags {
  memory: string;
  sinks: string;
  window: string;
}

export function addMemoryOptions(cmd: Command): Command {
  return cmd
    .option('--memory <kind>', 'full (the model\'s own: full KV, or hybrid KV + recurrent state for a converted model) or streaming (StreamingLLM: sinks + window for every head)', 'full')
    .option('--sinks <n>', 'streaming: attention-sink tokens kept', '4')
    .option('--window <n>', 'streaming: most recent tokens kept', '256');
}

/** A memory factory for generate(), or null for the model's own memory. */
export function memoryFactory(f: MemoryFlags): ((m: DecoderLM) => AttentionMemory) | null {
  if (f.memory === 'full' || f.memory === 'hybrid') return null;
  if (f.memory === 'streaming') {
    const sinks = parseIntArg('--sinks', f.sinks), window = parseIntArg('--window', f.window, 1);
    return (m) => new StreamingMemory(m.cfg.nLayers, sinks, window);
  }
  throw new ArgumentError('cli', '--memory', `${f.memory} is not a memory kind`, 'use full or streaming (streaming-heads is not implemented yet)');
}

export function makeMemory(f: MemoryFlags, m: DecoderLM): AttentionMemory {
  const factory = memoryFactory(f);
  return factory ? factory(m) : fullMemory(m);
}
