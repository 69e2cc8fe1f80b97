/**
 * The structural check tokenizer-json.ts runs before it reads a tokenizer.json: every field it reads has the
 * JSON type it assumes (objects where it indexes, arrays where it iterates), so a corrupt or hand-edited file is
 * a TokenizerError naming the field instead of a TypeError deep inside. Found by the fuzz test
 * (test/server/fuzz-parsers.test.ts). Unknown fields pass: the loader decides what it supports.
 */
import { z } from 'zod';
import { TokenizerError } from '../tensor/errors.js';

const obj = z.looseObject({});
const seqOf = (key: string) => z.union([obj.refine((o) => o['type'] !== 'Sequence', { message: `a Sequence needs a "${key}" array` }),
  z.looseObject({ type: z.literal('Sequence'), [key]: z.array(obj) })]);

const shape = z.looseObject({
  model: z.looseObject({
    vocab: z.record(z.string(), z.int()).optional(),
    merges: z.array(z.union([z.string(), z.tuple([z.string(), z.string()])])).nullish(),
  }).optional(),
  added_tokens: z.array(z.looseObject({ id: z.int().min(0), content: z.string() })).nullish(),
  normalizer: seqOf('normalizers').nullish(),
  pre_tokenizer: seqOf('pretokenizers').nullish(),
  post_processor: z.looseObject({ single: z.array(obj).optional() }).nullish(),
});

export function checkTokenizerJsonShape(tj: unknown, source: string): void {
  const r = shape.safeParse(tj);
  if (r.success) return;
  const issue = r.error.issues[0]!;
  throw new TokenizerError(`${issue.path.join('.') || 'the top level'}: ${issue.message}`, 'the tokenizer.json is corrupt', source);
}
