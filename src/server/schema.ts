/**
 * Request schemas (zod) for /v1/completions and /v1/chat/completions, the OpenAI fields this server honours plus
 * a few llama.cpp-style sampling extensions (top_k, min_p, repetition_penalty). Unknown keys are ignored, as
 * OpenAI-compatible servers do, but a known key with a wrong type or range is a 400 naming that key.
 *
 * Bounds that depend on the model (max_tokens against the context) come from `ctx`; the prompt's length in
 * characters is checked before admission, in tokens after tokenization (generation.ts).
 */
import { z } from 'zod';
import { badRequest, type ApiError } from './errors.js';

/** Longest prompt or message text accepted before tokenization (the body limit caps it too). */
export const MAX_TEXT_CHARS = 200_000;

const text = z.string().max(MAX_TEXT_CHARS);

function sampling(ctx: number) {
  return {
    model: z.string().min(1).max(256),
    max_tokens: z.int().min(1).max(ctx).nullish(),
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().gt(0).max(1).nullish(),
    top_k: z.int().min(0).max(1_000_000).nullish(),
    min_p: z.number().min(0).lt(1).nullish(),
    repetition_penalty: z.number().gt(0).max(10).nullish(),
    seed: z.int().min(0).max(2 ** 31 - 1).nullish(),
    stop: z.union([z.string().max(256), z.array(z.string().max(256)).max(4)]).nullish(),
    n: z.literal(1).nullish(),
    stream: z.boolean().nullish(),
    stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
    /** Extension: streamed chunks carry `cache: { tokens, bytes, full_attention_bytes, memory_kind }` (the playground). */
    cache_stats: z.boolean().nullish(),
  };
}

/** Builds a schema once per context size (zod schemas are costly to construct, cheap to reuse). */
function memo<S>(build: (ctx: number) => S): (ctx: number) => S {
  const cache = new Map<number, S>();
  return (ctx) => {
    let s = cache.get(ctx);
    if (!s) cache.set(ctx, (s = build(ctx)));
    return s;
  };
}

export const completionSchema = memo((ctx: number) =>
  z.object({
    ...sampling(ctx),
    // OpenAI also allows token arrays and batches; one text prompt is what a single-session server serves
    prompt: z.union([text, z.array(text).length(1)]),
  }));

const contentPart = z.object({ type: z.literal('text'), text });

export const chatSchema = memo((ctx: number) =>
  z.object({
    ...sampling(ctx),
    max_completion_tokens: z.int().min(1).max(ctx).nullish(),
    messages: z.array(z.object({
      role: z.enum(['system', 'developer', 'user', 'assistant']),
      content: z.union([text, z.array(contentPart).max(64)]),
    })).min(1).max(256),
  }));

export type CompletionRequest = z.infer<ReturnType<typeof completionSchema>>;
export type ChatRequest = z.infer<ReturnType<typeof chatSchema>>;

/** Parses `body` or returns a 400 ApiError naming the first offending field (OpenAI's `param`). */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T | ApiError {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return badRequest('the request body must be a JSON object', null, 'invalid_type');
  }
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = issue.path.map(String).join('.') || null;
  return badRequest(`${param ?? 'body'}: ${issue.message}`, param, issue.code);
}
