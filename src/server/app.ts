/**
 * The HTTP server (fastify): OpenAI-compatible routes, /health, /metrics and the playground at /.
 *
 * Hardening, in request order: an onRequest hook answers 503 while shutting down and 401 without the API key
 * (every route but /health); only JSON bodies are parsed (415 otherwise), within the body limit (413), rejecting
 * invalid UTF-8 and malformed JSON (400); zod schemas check every field (400); handlers check the model name (404)
 * and the prompt's length in characters (400), then the scheduler admits the request or answers 429, and only
 * then is the prompt tokenized and checked against the context (400). Every error leaves through one handler in
 * OpenAI's error shape.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Tokenizer } from '../io/tokenizer.js';
import type { DecoderLM } from '../model/transformer.js';
import { fullAttentionBytes } from '../inference/session.js';
import { ArgumentError } from '../tensor/errors.js';
import { DEFAULT_CHAT_TEMPLATE, makeChatTemplate, type ChatTemplate } from './chat-template.js';
import type { ServerContext } from './context.js';
import { ApiError, badRequest, shuttingDown, toApiError } from './errors.js';
import { handleChat, handleCompletion } from './generation.js';
import { Metrics } from './metrics.js';
import { playgroundHtml } from './playground.js';
import { Scheduler, TurnQueue } from './scheduler.js';

export interface ServerOptions {
  model: DecoderLM;
  tokenizer: Tokenizer;
  modelId: string;
  chatTemplate?: ChatTemplate;
  apiKey?: string;
  /** Sessions decoding at once (interleaved token by token). */
  maxConcurrent?: number;
  /** Requests waiting beyond those; more get 429. */
  maxQueue?: number;
  /** Largest request body in bytes. */
  bodyLimit?: number;
  /**
   * Longest prompt text in characters (a chat's message contents together); longer ones are refused before
   * tokenizing. Default: PROMPT_CHARS_PER_TOKEN per token of the model's context.
   */
  maxPromptChars?: number;
  /** How long shutdown lets running sessions finish before cancelling them. */
  graceMs?: number;
  /** Chat message contents are plain text: a special token a client writes in a message stays characters. */
  plainContent?: boolean;
}

/**
 * Characters per context token a prompt may have by default: text runs about 4 per token, so a longer prompt
 * cannot fit the context, and tokenizing it would only cost time (a 1 MB prompt takes seconds).
 */
export const PROMPT_CHARS_PER_TOKEN = 16;

/** After the drain, how long settled responses have to reach their clients before every socket is closed. */
const FLUSH_MS = 1000;

export interface RecurformerServer {
  readonly app: FastifyInstance;
  readonly context: ServerContext;
  /** Starts listening; resolves to the base URL (port 0 picks a free port). */
  listen(host: string, port: number): Promise<string>;
  /**
   * Graceful shutdown: refuse new requests (503), cancel queued ones, let running sessions finish within graceMs,
   * give responses FLUSH_MS to go out, then close every socket left (idle, never-finished or stalled requests,
   * clients that stopped reading). Idempotent.
   */
  shutdown(): Promise<void>;
}

export function createServer(o: ServerOptions): RecurformerServer {
  const maxConcurrent = o.maxConcurrent ?? 4, maxQueue = o.maxQueue ?? 16;
  if (!(Number.isInteger(maxConcurrent) && maxConcurrent >= 1)) throw new ArgumentError('createServer', 'maxConcurrent', `= ${maxConcurrent} must be an integer >= 1`);
  if (!(Number.isInteger(maxQueue) && maxQueue >= 0)) throw new ArgumentError('createServer', 'maxQueue', `= ${maxQueue} must be an integer >= 0`);
  const maxPromptChars = o.maxPromptChars ?? o.model.cfg.maxPos * PROMPT_CHARS_PER_TOKEN;
  if (!(Number.isInteger(maxPromptChars) && maxPromptChars >= 1)) {
    throw new ArgumentError('createServer', 'maxPromptChars', `= ${maxPromptChars} must be an integer >= 1`);
  }
  const metrics = new Metrics();
  const scheduler = new Scheduler({
    maxConcurrent, maxQueue,
    onSettled: (job) => metrics.tokens(job.session.memoryKind, job.session.prompt.length, job.session.ids.length, job.state === 'cancelled'),
  });
  const ctx: ServerContext = {
    model: o.model, tokenizer: o.tokenizer, modelId: o.modelId, maxPromptChars, plainContent: o.plainContent ?? false, scheduler, prepare: new TurnQueue(), metrics,
    chatTemplate: o.chatTemplate ?? makeChatTemplate(DEFAULT_CHAT_TEMPLATE, 'default'),
  };
  const bodyLimit = o.bodyLimit ?? 1 << 20;
  // idle keep-alive sockets must not hold close() open; busy ones finish their response first
  // requestTimeout: a client that never finishes sending its request is dropped (408) instead of holding a socket
  const app = Fastify({ logger: false, bodyLimit, requestTimeout: 60_000, forceCloseConnections: 'idle', return503OnClosing: true });
  let closing: Promise<void> | null = null;
  const keyHash = o.apiKey ? sha256(o.apiKey) : null;

  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0];
    if (closing && path !== '/health') throw shuttingDown();
    if (!keyHash || path === '/health') return;
    const auth = req.headers.authorization;
    let given = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
    // the playground page cannot send a header on navigation: it takes the key once as ?api_key=
    if (given === undefined && path === '/') given = (req.query as Record<string, string | undefined>).api_key;
    if (given === undefined || !timingSafeEqual(sha256(given), keyHash)) {
      throw new ApiError(401, 'authentication_error', 'a valid API key is required (Authorization: Bearer KEY)', null, 'invalid_api_key');
    }
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    // generation routes count their own successes (with their duration, and streams are hijacked from this hook)
    if (!GENERATION_ROUTES.has(route) || reply.statusCode >= 400) metrics.request(route, reply.statusCode);
  });

  // JSON bodies only: any other type (text/plain included, which fastify parses by default) is a 415.
  // Strict UTF-8 (fastify's default would silently turn invalid bytes into U+FFFD), then JSON.parse.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body as Buffer);
    } catch {
      done(badRequest('the request body is not valid UTF-8', null, 'invalid_encoding'), undefined);
      return;
    }
    if (text.trim() === '') {
      done(badRequest('the request body is empty; send a JSON object', null, 'invalid_json'), undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (e) {
      done(badRequest(`the request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json'), undefined);
    }
  });

  app.setErrorHandler(async (err, req, reply) => {
    const e = toApiError(err, { bodyLimit, contentType: req.headers['content-type']?.slice(0, 100) });
    if (!(err instanceof ApiError) && e.status >= 500) process.emitWarning(`recurformer serve: ${(err as Error).stack ?? String(err)}`);
    return reply.code(e.status).headers(e.headers).send(e.body());
  });
  app.setNotFoundHandler(async (req, reply) =>
    reply.code(404).send(new ApiError(404, 'not_found_error', `no route ${req.method} ${req.url.split('?')[0]}`, null, 'not_found').body()));

  app.get('/health', async (_req, reply) =>
    closing ? reply.code(503).send({ status: 'shutting_down' }) : { status: 'ok' });
  app.get('/v1/models', async () => ({
    object: 'list',
    data: [{ id: ctx.modelId, object: 'model', created: 0, owned_by: 'recurformer', context_length: o.model.cfg.maxPos }],
  }));
  app.get('/metrics', async (_req, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render(scheduler, (n) => fullAttentionBytes(o.model, n))));
  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(playgroundHtml(ctx.modelId)));
  app.post('/v1/completions', (req, reply) => handleCompletion(ctx, req, reply));
  app.post('/v1/chat/completions', (req, reply) => handleChat(ctx, req, reply));

  return {
    app,
    context: ctx,
    async listen(host, port) {
      await app.listen({ host, port });
      const addr = app.server.address();
      if (addr === null || typeof addr === 'string') return `http://${host}:${port}`;
      const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      return `http://${h}:${addr.port}`;
    },
    shutdown() {
      closing ??= (async () => {
        await scheduler.close(o.graceMs ?? 10_000);
        const closed = app.close();
        // close() waits for every connection, and Node counts one that never finished a request (even a bare
        // connect) as busy forever once the server stops checking timeouts: after the flush, cut them all
        const timer = setTimeout(() => app.server.closeAllConnections(), FLUSH_MS);
        await closed.finally(() => clearTimeout(timer));
      })();
      return closing;
    },
  };
}

const GENERATION_ROUTES = new Set(['/v1/completions', '/v1/chat/completions']);

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();
