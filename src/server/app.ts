/**
 * The HTTP server (fastify): OpenAI-compatible routes, /health, /metrics and the playground at /.
 *
 * Hardening, in request order: an onRequest hook answers 503 while shutting down and 401 without the API key
 * (every route but /health); the JSON body parser enforces the body limit (413), rejects invalid UTF-8 and
 * malformed JSON (400); zod schemas check every field (400); handlers check the model name (404) and the prompt
 * against the context (400); the scheduler answers 429 when its queue is full. Every error leaves through one
 * handler in OpenAI's error shape.
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
import { Scheduler } from './scheduler.js';

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
  /** How long shutdown lets running sessions finish before cancelling them. */
  graceMs?: number;
}

export interface RecurformerServer {
  readonly app: FastifyInstance;
  readonly context: ServerContext;
  /** Starts listening; resolves to the base URL (port 0 picks a free port). */
  listen(host: string, port: number): Promise<string>;
  /** Graceful shutdown: refuse new requests, let running sessions finish (within graceMs), close. Idempotent. */
  shutdown(): Promise<void>;
}

export function createServer(o: ServerOptions): RecurformerServer {
  const maxConcurrent = o.maxConcurrent ?? 4, maxQueue = o.maxQueue ?? 16;
  if (!(Number.isInteger(maxConcurrent) && maxConcurrent >= 1)) throw new ArgumentError('createServer', 'maxConcurrent', `= ${maxConcurrent} must be an integer >= 1`);
  if (!(Number.isInteger(maxQueue) && maxQueue >= 0)) throw new ArgumentError('createServer', 'maxQueue', `= ${maxQueue} must be an integer >= 0`);
  const metrics = new Metrics();
  const scheduler = new Scheduler({
    maxConcurrent, maxQueue,
    onSettled: (job) => metrics.tokens(job.session.memoryKind, job.session.prompt.length, job.session.ids.length, job.state === 'cancelled'),
  });
  const ctx: ServerContext = {
    model: o.model, tokenizer: o.tokenizer, modelId: o.modelId, scheduler, metrics,
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

  // JSON bodies: strict UTF-8 (fastify's default would silently turn invalid bytes into U+FFFD), then JSON.parse
  app.removeContentTypeParser('application/json');
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

  app.setErrorHandler(async (err, _req, reply) => {
    const e = toApiError(err);
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
        await app.close();
      })();
      return closing;
    },
  };
}

const GENERATION_ROUTES = new Set(['/v1/completions', '/v1/chat/completions']);

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();
