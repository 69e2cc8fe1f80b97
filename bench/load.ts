/**
 * Server load test on loopback: N concurrent streaming clients (autocannon) against an in-process server on
 * 127.0.0.1 serving stories260K, bounded by a fixed request count and a wall-clock cap. Reports p50/p99 latency
 * (a whole streamed completion), tokens/s, status counts (429s are deliberate: more clients than decode slots plus
 * queue), and heap/RSS before and after, once idle, to show memory returns to baseline.
 *
 *   node --expose-gc --import tsx bench/load.ts [--connections 16] [--amount 400] [--max-tokens 64] [--write]
 *
 * --write replaces the "Server load test" section of docs/performance.md with the results.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { loadModel } from '../src/io/model-load.js';
import { buildModel } from '../src/io/build.js';
import { generate } from '../src/inference/generate.js';
import { createServer } from '../src/server/app.js';
import { loadChatTemplate } from '../src/server/chat-template.js';
import { backend } from '../src/tensor/backend.js';

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '16' },
    amount: { type: 'string', default: '400' },
    'max-tokens': { type: 'string', default: '64' },
    'max-concurrent': { type: 'string', default: '4' },
    'max-queue': { type: 'string', default: '8' },
    'time-limit': { type: 'string', default: '120' },
    write: { type: 'boolean', default: false },
  },
});
const connections = Number(args.connections), amount = Number(args.amount), maxTokens = Number(args['max-tokens']);
const maxConcurrent = Number(args['max-concurrent']), maxQueue = Number(args['max-queue']);
const timeLimitS = Number(args['time-limit']);

const MODEL = new URL('../models/stories260K', import.meta.url).pathname;
const loaded = loadModel(MODEL);
const model = buildModel(loaded);

// the reference point: one in-process generate() at a time, no HTTP
const solo = ((): number => {
  generate(model, loaded.tokenizer!, 'Once upon a time', { maxTokens: 64, temperature: 0.8 });
  const t = performance.now();
  let n = 0;
  for (let i = 0; i < 10; i++) n += generate(model, loaded.tokenizer!, 'Once upon a time', { maxTokens: 64, temperature: 0.8, seed: i }).ids.length;
  return n / ((performance.now() - t) / 1000);
})();

const server = createServer({
  model, tokenizer: loaded.tokenizer!, modelId: 'stories260K', chatTemplate: loadChatTemplate(MODEL),
  maxConcurrent, maxQueue,
});
const url = await server.listen('127.0.0.1', 0); // loopback only, a free port

const gc = (globalThis as { gc?: () => void }).gc;
const mem = (): { heapMB: number; rssMB: number } => {
  gc?.();
  const m = process.memoryUsage();
  return { heapMB: m.heapUsed / 2 ** 20, rssMB: m.rss / 2 ** 20 };
};

const body = (stream: boolean): string =>
  JSON.stringify({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: maxTokens, temperature: 0.8, stream });
// warm-up: one request of each kind, so the baseline includes the JIT-compiled code and the first buffers
for (const stream of [false, true]) {
  await (await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(stream) })).text();
}
const before = mem();
const metricsBefore = await metricTotals();

const t0 = performance.now();
const run = autocannon({
  url: `${url}/v1/completions`,
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: body(true),
  connections,
  amount,
  timeout: 30,
  excludeErrorStats: true, // latency of completed streams only: the fast 429s would flatter p50
});
// the wall-clock cap: stop the run even if something stalls
const cap = setTimeout(() => (run as unknown as { stop(): void }).stop(), timeLimitS * 1000);
const r = await run;
clearTimeout(cap);
const wallS = (performance.now() - t0) / 1000;
await server.context.scheduler.idle();
const metricsAfter = await metricTotals();
const after = mem();
await server.shutdown();

const statuses: Record<string, number> = {};
for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) statuses[code] = v.count ?? 0;
const ok = statuses['200'] ?? 0;
const unexpected = Object.entries(statuses).filter(([c]) => c !== '200' && c !== '429').reduce((s, [, n]) => s + n, 0);
const tokens = metricsAfter.completion - metricsBefore.completion;
const result = {
  backend: backend().name,
  connections, amount, maxTokens, maxConcurrent, maxQueue,
  wallSeconds: round(wallS),
  statuses,
  errors: r.errors + r.timeouts + unexpected,
  latencyMs: { p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max },
  completionTokens: tokens,
  tokensPerSecond: round(tokens / wallS),
  soloGenerateTokensPerSecond: round(solo),
  completionsPerSecond: round(ok / wallS),
  memory: { before: roundAll(before), after: roundAll(after), cacheBytesAfter: metricsAfter.cacheBytes },
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
if (args.write) writeSection(result);
if (result.errors > 0 || metricsAfter.cacheBytes !== 0) process.exitCode = 1;

async function metricTotals(): Promise<{ completion: number; cacheBytes: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (name: string): number => Number(text.split('\n').find((l) => l.startsWith(name))?.split(' ').at(-1) ?? NaN);
  return {
    completion: get('recurformer_completion_tokens_total{memory_kind="full"}'),
    cacheBytes: get('recurformer_cache_bytes{memory_kind="full"}'),
  };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

function roundAll<T extends Record<string, number>>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v)])) as T;
}

function writeSection(res: typeof result): void {
  const path = new URL('../docs/performance.md', import.meta.url).pathname;
  const doc = existsSync(path) ? readFileSync(path, 'utf8') : '# Performance\n';
  const s = res.statuses;
  const section = [
    '## Server load test',
    '',
    `\`node --expose-gc --import tsx bench/load.ts --connections ${res.connections} --amount ${res.amount} --max-tokens ${res.maxTokens} --write\``,
    '(bench/load.ts): autocannon drives streaming `/v1/completions` requests ("Once upon a time", temperature 0.8) at an',
    `in-process server on 127.0.0.1 serving stories260K with --max-concurrent ${res.maxConcurrent} --max-queue ${res.maxQueue}, so`,
    `${res.connections} clients deliberately overflow the ${res.maxConcurrent + res.maxQueue} slots and some get 429 + Retry-After.`,
    'Latency is one whole streamed completion (200s only), from request to `data: [DONE]`.',
    '',
    '| measure | value |',
    '| --- | --- |',
    `| tensor backend | ${res.backend} |`,
    `| requests | ${res.amount} over ${res.wallSeconds} s: ${s['200'] ?? 0} x 200, ${s['429'] ?? 0} x 429 |`,
    `| errors other than 429 | ${res.errors} |`,
    `| latency p50 / p99 / max | ${res.latencyMs.p50} / ${res.latencyMs.p99} / ${res.latencyMs.max} ms |`,
    `| generated tokens/s (all sessions) | ${res.tokensPerSecond} |`,
    `| for reference: one generate() in-process, no HTTP | ${res.soloGenerateTokensPerSecond} tokens/s |`,
    `| completions/s | ${res.completionsPerSecond} |`,
    `| heap before / after (idle, after GC) | ${res.memory.before.heapMB} / ${res.memory.after.heapMB} MiB |`,
    `| RSS before / after | ${res.memory.before.rssMB} / ${res.memory.after.rssMB} MiB |`,
    `| cache bytes held after the run | ${res.memory.cacheBytesAfter} |`,
    '',
    'Measured on the project machine (2 cores, no GPU); autocannon runs in the same process and shares the cores.',
    'NOTE: the bundled model is tiny, so these figures measure the server (HTTP, SSE, scheduling) as much as decoding;',
    'RSS after the run stays above the baseline because V8 and the allocator keep freed pages, while the heap and the',
    'cache bytes return to the baseline.',
    '',
  ].join('\n');
  const start = doc.indexOf('## Server load test');
  let out: string;
  if (start < 0) out = `${doc.trimEnd()}\n\n${section}`;
  else {
    const next = doc.indexOf('\n## ', start + 1);
    out = doc.slice(0, start) + section + (next < 0 ? '' : doc.slice(next + 1));
  }
  writeFileSync(path, out);
}
