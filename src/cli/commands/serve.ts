/**
 * `recurformer serve [MODEL]`: the OpenAI-compatible HTTP server (src/server/). Binds to loopback unless told
 * otherwise; SIGTERM and SIGINT shut it down gracefully (running sessions finish within the grace period, then
 * every connection is closed), after which the command returns and the process exits 0. A second signal during
 * that drain exits at once (src/server/signals.ts).
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ArgumentError, TokenizerError } from '../../tensor/errors.js';
import { loadChatTemplate } from '../../server/chat-template.js';
import { createServer, PROMPT_CHARS_PER_TOKEN } from '../../server/app.js';
import { shutdownOnSignal } from '../../server/signals.js';
import { load, modelPath, parseDtypeArg, parseIntArg } from '../common.js';
import { computedDefault, modelArgument } from '../help.js';

interface Opts {
  host: string;
  port: string;
  apiKey?: string;
  maxQueue: string;
  maxConcurrent: string;
  bodyLimit: string;
  maxPromptChars?: string;
  plainContent?: boolean;
  graceMs: string;
  dtype: string;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve a model over an OpenAI-compatible HTTP API, with a playground at /')
    .addArgument(modelArgument())
    .option('--host <host>', 'address to bind (0.0.0.0 for every interface)', '127.0.0.1')
    .option('--port <port>', 'port (0 picks a free one)', '8080')
    .option('--api-key <key>', 'require "Authorization: Bearer KEY" on every route but /health')
    .option('--max-queue <n>', 'requests that may wait for a decode slot (more get 429)', '16')
    .option('--max-concurrent <n>', 'sessions decoding at once, interleaved token by token', '4')
    .option('--body-limit <bytes>', 'largest request body (larger ones get 413)', String(1 << 20))
    .addOption(computedDefault('--max-prompt-chars <n>', 'longest prompt in characters, refused (400) before tokenizing',
      `${PROMPT_CHARS_PER_TOKEN} per token of the context`))
    .option('--plain-content', 'tokenize chat message contents as plain text, so a special token a client writes stays text')
    .option('--grace-ms <ms>', 'on SIGTERM/SIGINT, how long running sessions may finish before being cancelled; a second signal exits at once', '10000')
    .option('--dtype <d>', 'weights in memory: keep (as stored), f16 (16-bit; BF16 checkpoints stay bf16) or f32', 'keep')
    .action(async (modelArg: string | undefined, o: Opts) => {
      const path = modelPath(modelArg); // a train run folder means its model/
      const { loaded, model } = load(path, parseDtypeArg(o.dtype));
      if (!loaded.tokenizer) throw new TokenizerError('the model has no tokenizer', 'serve a folder with tokenizer.json', loaded.source);
      const server = createServer({
        model, tokenizer: loaded.tokenizer, modelId: servedModelId(path),
        chatTemplate: loadChatTemplate(path, loaded.tokenizer),
        apiKey: o.apiKey,
        maxQueue: parseIntArg('--max-queue', o.maxQueue),
        maxConcurrent: parseIntArg('--max-concurrent', o.maxConcurrent, 1),
        bodyLimit: parseIntArg('--body-limit', o.bodyLimit, 1),
        maxPromptChars: o.maxPromptChars === undefined ? undefined : parseIntArg('--max-prompt-chars', o.maxPromptChars, 1),
        graceMs: parseIntArg('--grace-ms', o.graceMs),
        plainContent: o.plainContent ?? false,
      });
      const port = parseIntArg('--port', o.port);
      let url: string;
      try {
        url = await server.listen(o.host, port);
      } catch (e) {
        const code = (e as { code?: string }).code ?? (e as Error).message;
        throw new ArgumentError('serve', '--host/--port', `cannot listen on ${o.host}:${port} (${code})`,
          code === 'EADDRINUSE' ? 'the port is taken: pick another, or --port 0 for a free one' : 'check the address');
      }
      process.stderr.write(`recurformer: serving ${server.context.modelId} on ${url} (playground at ${url}/)\n`);
      await shutdownOnSignal(server, (line) => process.stderr.write(`recurformer: ${line}\n`));
    });
}

/**
 * The name clients pass as `model`: the file's or folder's base name, or for a training run's model/ folder the
 * run's name (a dozen runs would otherwise all be served as "model").
 */
export function servedModelId(path: string): string {
  const abs = resolve(path);
  const isRunModel = basename(abs) === 'model' && existsSync(join(dirname(abs), 'checkpoint.bin'));
  return basename(isRunModel ? dirname(abs) : abs).replace(/\.(gguf|bin)$/, '');
}
