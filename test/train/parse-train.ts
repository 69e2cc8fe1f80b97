/** Test helper: the option values a `train` command line resolves to, without training (the action is replaced). */
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { givenFlags, resolveTrainValues } from '../../src/cli/commands/train.js';

export async function parseTrain(argv: string[]): Promise<Record<string, unknown>> {
  const program = buildProgram();
  const train = program.commands.find((c) => c.name() === 'train')!;
  let values: Record<string, unknown> | undefined;
  train.action((model: string | undefined, _o: unknown, self: Command) => {
    values = resolveTrainValues(model, givenFlags(self));
  });
  await program.parseAsync(['train', ...argv], { from: 'user' });
  assert.ok(values, 'the action ran');
  return values;
}
