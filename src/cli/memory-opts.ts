/** The --memory flag shared by generate and eval: which attention memory runs, and the baseline's budget. */
import type { Command } from 'commander';
import { streamingHeadsMemory, streamingMemory, type HybridMemory } from '../inference/hybrid-memory.js';
import type { ReplacementPlan } from '../convert/plan.js';
import { checkPlanFile, parsePlan } from '../convert/validate.js';
import type { ModelConfig } from '../model/config.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { parseIntArg, readJsonArg } from './common.js';

export interface MemoryFlags {
  memory: string;
  sinks: string;
  window: string;
  plan?: string;
}

export function addMemoryOptions(cmd: Command): Command {
  return cmd
    .option('--memory <kind>', 'full (the model\'s own: full KV, or hybrid KV + recurrent state for a converted model), streaming (StreamingLLM: sinks + window for every attention head; a converted model\'s recurrent heads keep their state) or streaming-heads (the --plan groups keep sinks + window, the others full KV)', 'full')
    .option('--sinks <n>', 'streaming: attention-sink tokens kept', '4')
    .option('--window <n>', 'streaming: most recent tokens kept', '256')
    .option('--plan <file>', 'streaming-heads: the plan.json whose KV groups keep only sinks + window');
}

/** The --plan file (required with --memory streaming-heads), checked field by field. */
function readPlan(f: MemoryFlags): { plan: ReplacementPlan; file: string } {
  if (!f.plan) throw new ArgumentError('cli', '--plan', 'is required with --memory streaming-heads', 'pass the plan.json written by convert');
  return { plan: parsePlan(readJsonArg(f.plan, 'cli', '--plan'), f.plan), file: f.plan };
}

const groupsOf = (plan: ReplacementPlan): Map<number, number[]> => new Map(plan.layers.map((l) => [l.layer, l.groups]));

/** The KV groups per layer of the --plan file; given the model's config, the plan must have been made for its shape. */
export function planGroups(f: MemoryFlags, cfg?: ModelConfig): Map<number, number[]> {
  const { plan, file } = readPlan(f);
  if (cfg) checkPlanFile(plan, cfg, file);
  return groupsOf(plan);
}

/** A memory factory for generate(), or null for the model's own memory. */
export function memoryFactory(f: MemoryFlags): ((m: DecoderLM) => HybridMemory) | null {
  if (f.memory === 'full' || f.memory === 'hybrid') return null;
  if (f.memory === 'streaming') {
    const sinks = parseIntArg('--sinks', f.sinks), window = parseIntArg('--window', f.window, 1);
    return (m) => streamingMemory(m, { sinks, window }); // a converted model's recurrent heads keep their state
  }
  if (f.memory === 'streaming-heads') {
    const { plan, file } = readPlan(f);
    const sinks = parseIntArg('--sinks', f.sinks), window = parseIntArg('--window', f.window, 1);
    return (m) => {
      if (m.recurrent.size > 0) throw new ArgumentError('cli', '--memory', 'streaming-heads runs on the original model', 'pass the unconverted model');
      checkPlanFile(plan, m.cfg, file);
      return streamingHeadsMemory(m, groupsOf(plan), { sinks, window });
    };
  }
  throw new ArgumentError('cli', '--memory', `${f.memory} is not a memory kind`, 'use full, streaming or streaming-heads');
}
