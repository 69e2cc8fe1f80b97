/** Starts the server in-process on 127.0.0.1 with port 0 (a free port) over the bundled stories260K. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { loadModel } from '../../src/io/model-load.js';
import { buildModel } from '../../src/io/build.js';
import { createServer, type RecurformerServer, type ServerOptions } from '../../src/server/app.js';
import { loadChatTemplate } from '../../src/server/chat-template.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MODEL_DIR = new URL('../../models/stories260K', import.meta.url).pathname;
const loaded = loadModel(MODEL_DIR);
const model = buildModel(loaded);
/** The bundled model's tokenizer (to wrap in spies). */
export const tokenizer = loaded.tokenizer!;

export interface TestServer {
  server: RecurformerServer;
  url: string;
  client: OpenAI;
  close(): Promise<void>;
}

/**
 * A server whose tokenizer sleeps 20 ms in every decode, so a reply takes seconds and a Stop or a disconnect lands
 * mid-stream. Served as 'run-7'.
 */
export function startSlowServer(): Promise<TestServer> {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const sleepy = Object.create(tokenizer) as typeof tokenizer;
  sleepy.decode = (ids) => {
    Atomics.wait(nap, 0, 0, 20);
    return tokenizer.decode(ids);
  };
  return startServer({ tokenizer: sleepy, modelId: 'run-7' });
}

export async function startServer(opts: Partial<ServerOptions> = {}): Promise<TestServer> {
  const server = createServer({
    model, tokenizer: loaded.tokenizer!, modelId: 'stories260K', chatTemplate: loadChatTemplate(MODEL_DIR), ...opts,
  });
  const url = await server.listen('127.0.0.1', 0);
  // maxRetries 0: a 429 must reach the test, not be retried away
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: opts.apiKey ?? 'unused', maxRetries: 0, timeout: 20_000 });
  return { server, url, client, close: () => server.shutdown() };
}

/** POSTs raw bytes and returns the status, headers and parsed JSON body. */
export async function post(url: string, body: string | Uint8Array, headers: Record<string, string> = {}):
  Promise<{ status: number; headers: Headers; json: { error?: { message: string; type: string; param: string | null; code: string | null } } & Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: JSON.parse(text) };
}

/**
 * Runs the CLI in a child process. (test/helpers/cli.ts's in-process runCli swaps process.stdout.write, which
 * also swallows the test runner's own report lines written meanwhile; a server test must not lose those.)
 */
export function runCliChild(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, RECURFORMER_QUIET: '1' };
  delete env.NODE_TEST_CONTEXT; // or the child would report as a test file
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    `import { main } from './src/cli/main.ts'; process.exitCode = await main(${JSON.stringify(args)});`],
  { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}
