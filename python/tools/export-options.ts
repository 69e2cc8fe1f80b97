/**
 * Writes python/recurformer_torch/train_options.json: the training options schema of src/train/options.ts (each
 * option's JSON Schema, default, kind, flag and help), so the PyTorch engine reads a recipe or --config file exactly
 * as the TypeScript engine does. Regenerate after changing TRAIN_OPTIONS:
 *   node --import tsx python/tools/export-options.ts
 * (python/tests/test_options.py fails when the committed file is stale; `--print` writes to stdout instead.)
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { trainOption, TRAIN_OPTION_KEYS } from '../../src/train/options.js';

const options = Object.fromEntries(TRAIN_OPTION_KEYS.map((key) => {
  const s = trainOption(key);
  const { $schema: _drop, ...schema } = z.toJSONSchema(s.schema) as Record<string, unknown>;
  return [key, { schema, default: s.default ?? null, required: s.default === undefined, kind: s.kind, flag: s.flag, help: s.help, expect: s.expect }];
}));
const text = `${JSON.stringify({ generatedBy: 'python/tools/export-options.ts from src/train/options.ts', version: 1, fileNotes: ['description'], options }, null, 2)}\n`;
if (process.argv.includes('--print')) process.stdout.write(text);
else writeFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'recurformer_torch', 'train_options.json'), text);
