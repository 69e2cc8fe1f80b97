/**
 * POST /v1/completions and /v1/chat/completions: validate, check the prompt's size, take a place in the scheduler
 * (429 when full), then render and tokenize (one request per event-loop turn), check the context, queue a
 * DecodeSession, and either stream OpenAI chunks as server-sent events (ending with `data: [DONE]`) or answer with
 * one JSON object. Everything before admission is bounded by the body limit and cheap, so a flood of large or
 * refused requests cannot hold the event loop. A client that disconnects cancels its job, which frees the
 * session's cache at once.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { promptIds } from '../inference/generate.js';
import { DecodeSession, fullAttentionBytes, type StepEvent } from '../inference/session.js';
import { RecurformerError } from '../tensor/errors.js';
import { ApiError, badRequest, shuttingDown, toApiError } from './errors.js';
import { chatSchema, completionSchema, parseBody, type ChatRequest, type CompletionRequest } from './schema.js';
import type { ServerContext } from './context.js';
import type { Admission, Job } from './scheduler.js';

type Kind = 'text' | 'chat';
type Common = CompletionRequest | ChatRequest;

const finishReason = (r: string): 'stop' | 'length' => (r === 'eos' || r === 'stop' ? 'stop' : 'length');

export async function handleCompletion(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const body = parseBody(completionSchema(ctx.model.cfg.maxPos), req.body);
  if (body instanceof ApiError) throw body;
  const prompt = typeof body.prompt === 'string' ? body.prompt : body.prompt[0]!;
  await run(ctx, reply, 'text', body, prompt.length, () => promptIds(ctx.tokenizer, prompt), 'prompt', body.max_tokens ?? 16);
}

export async function handleChat(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const body = parseBody(chatSchema(ctx.model.cfg.maxPos), req.body);
  if (body instanceof ApiError) throw body;
  const messages = body.messages.map((m) => ({
    role: m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
  }));
  const chars = messages.reduce((sum, m) => sum + m.content.length, 0);
  // chat replies run until EOS or the context unless the client caps them
  await run(ctx, reply, 'chat', body, chars, () => ctx.chatTemplate.ids(messages, ctx.tokenizer, { plainContent: ctx.plainContent }), 'messages',
    body.max_completion_tokens ?? body.max_tokens ?? ctx.model.cfg.maxPos);
}

/** `chars` is the prompt text's length before rendering; `prompt` renders and tokenizes it (once admitted). */
async function run(ctx: ServerContext, reply: FastifyReply, kind: Kind, body: Common, chars: number,
  prompt: () => number[], promptParam: string, maxTokens: number): Promise<void> {
  if (body.model !== ctx.modelId) {
    throw new ApiError(404, 'not_found_error', `the model '${body.model}' does not exist; this server serves '${ctx.modelId}'`,
      'model', 'model_not_found');
  }
  if (chars > ctx.maxPromptChars) {
    throw badRequest(`the prompt has ${chars} characters, more than the limit of ${ctx.maxPromptChars} `
      + '(raise it with --max-prompt-chars)', promptParam, 'prompt_too_long');
  }
  const admission = ctx.scheduler.admit(); // 429/503 here, before any tokenizing
  let session: DecodeSession;
  try {
    session = await makeSession(ctx, body, kind, prompt, promptParam, maxTokens);
  } catch (e) {
    admission.release();
    throw e;
  }
  await respond(ctx, reply, kind, body, session, admission);
}

/** Renders and tokenizes the prompt (in its own event-loop turn), checks it against the context, makes the session. */
async function makeSession(ctx: ServerContext, body: Common, kind: Kind, prompt: () => number[], promptParam: string,
  maxTokens: number): Promise<DecodeSession> {
  const ids = await ctx.prepare.run(prompt);
  const n = ctx.model.cfg.maxPos;
  if (ids.length > n) {
    throw badRequest(`the prompt has ${ids.length} tokens, more than the model's context of ${n}`, promptParam,
      'context_length_exceeded');
  }
  try {
    return new DecodeSession(ctx.model, ctx.tokenizer, ids, {
      maxTokens,
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? 1,
      topK: body.top_k ?? 0,
      minP: body.min_p ?? 0,
      repetitionPenalty: body.repetition_penalty ?? 1,
      seed: body.seed ?? Math.floor(Math.random() * 2 ** 31),
      stop: body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop,
      // a completion continues the prompt's text (keeps the leading space); a chat reply stands alone
      continuation: kind === 'text',
    });
  } catch (e) {
    // the schema bounds every option, so this is a client error the schema missed, not a server fault
    if (e instanceof RecurformerError) throw badRequest(e.message);
    throw e;
  }
}

/** Queues the session on its admission and answers: a stream of chunks, or one JSON object at the end. */
async function respond(ctx: ServerContext, reply: FastifyReply, kind: Kind, body: Common, session: DecodeSession,
  admission: Admission): Promise<void> {
  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
  const t0 = performance.now();
  const route = kind === 'chat' ? '/v1/chat/completions' : '/v1/completions';
  if (body.stream) {
    const sse = new SseWriter(ctx, reply, kind, id, created, !!body.cache_stats);
    const job = ctx.scheduler.submit(session, (ev, j) => sse.event(ev, j), admission); // throws 503 before any byte is sent
    sse.start(job);
    let outcome;
    try {
      outcome = await job.promise;
    } catch (e) {
      // the headers are out: report in-band (the scheduler has already freed the session)
      sse.fail(toApiError(e));
      ctx.metrics.request(route, 500);
      return;
    }
    const { result, cancelled } = outcome;
    if (!cancelled) {
      sse.end(finishReason(result.stopReason), body.stream_options?.include_usage
        ? usage(result.promptIds.length, result.ids.length) : null);
    } else if (!sse.clientGone) {
      sse.fail(shuttingDown()); // cancelled by shutdown while the client listens
    }
    // 499: the client went away (nginx's code); 503: shutdown cancelled it
    ctx.metrics.request(route, !cancelled ? 200 : sse.clientGone ? 499 : 503, (performance.now() - t0) / 1000);
    return;
  }
  const job = ctx.scheduler.submit(session, (ev) => {
    if (ev.id >= 0) ctx.metrics.decoded(session.memoryKind);
  }, admission);
  let clientGone = false;
  const onClose = (): void => {
    if (reply.raw.writableEnded) return;
    clientGone = true;
    job.cancel();
  };
  reply.raw.on('close', onClose);
  const { result, cancelled } = await job.promise.finally(() => reply.raw.off('close', onClose));
  ctx.metrics.request(route, !cancelled ? 200 : clientGone ? 499 : 503, (performance.now() - t0) / 1000);
  if (cancelled && clientGone) return; // nobody is listening
  if (cancelled) throw shuttingDown(); // shutdown cancelled it after its grace period
  const choice = kind === 'chat'
    ? { index: 0, message: { role: 'assistant', content: result.text }, finish_reason: finishReason(result.stopReason), logprobs: null }
    : { index: 0, text: result.text, finish_reason: finishReason(result.stopReason), logprobs: null };
  await reply.send({ id, object, created, model: ctx.modelId, choices: [choice], usage: usage(result.promptIds.length, result.ids.length) });
}

const usage = (p: number, c: number) => ({ prompt_tokens: p, completion_tokens: c, total_tokens: p + c });

/** Writes OpenAI stream chunks on a hijacked reply. */
class SseWriter {
  clientGone = false;
  private readonly object: string;

  constructor(private readonly ctx: ServerContext, private readonly reply: FastifyReply, private readonly kind: Kind,
    private readonly id: string, private readonly created: number, private readonly cacheStats: boolean) {
    this.object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  }

  start(job: Job): void {
    this.reply.hijack();
    const raw = this.reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    // the client went away: cancel its session now (frees the cache), even mid-token
    raw.on('close', () => {
      if (raw.writableEnded) return;
      this.clientGone = true;
      job.cancel();
    });
    if (this.kind === 'chat') this.chunk({ role: 'assistant', content: '' }, null);
  }

  event(ev: StepEvent, job: Job): void {
    if (ev.id >= 0) this.ctx.metrics.decoded(job.session.memoryKind);
    if (!ev.delta && !this.cacheStats) return;
    if (ev.done && !ev.delta) return;
    const s = job.session;
    const cache = this.cacheStats && !ev.done ? {
      memory_kind: s.memoryKind, tokens: s.length, bytes: s.bytes(), full_attention_bytes: fullAttentionBytes(s.model, s.length),
    } : undefined;
    this.chunk(this.kind === 'chat' ? { content: ev.delta } : ev.delta, null, cache);
  }

  end(finish: 'stop' | 'length', usage: object | null): void {
    this.chunk(this.kind === 'chat' ? {} : '', finish);
    if (usage) this.write({ id: this.id, object: this.object, created: this.created, model: this.ctx.modelId, choices: [], usage });
    this.reply.raw.end('data: [DONE]\n\n');
  }

  /** An unexpected failure after the headers went out: report it in-band, then close. */
  fail(e: ApiError): void {
    if (this.reply.raw.writableEnded || this.reply.raw.destroyed) return;
    this.write(e.body());
    this.reply.raw.end('data: [DONE]\n\n');
  }

  private chunk(delta: object | string, finish: string | null, cache?: object): void {
    const choice = this.kind === 'chat'
      ? { index: 0, delta, finish_reason: finish, logprobs: null }
      : { index: 0, text: delta, finish_reason: finish, logprobs: null };
    this.write({ id: this.id, object: this.object, created: this.created, model: this.ctx.modelId, choices: [choice],
      ...(cache ? { cache } : {}) });
  }

  private write(obj: object): void {
    const raw = this.reply.raw;
    if (raw.writableEnded || raw.destroyed) return;
    raw.write(`data: ${JSON.stringify(obj)}\n\n`);
  }
}
