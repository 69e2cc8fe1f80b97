/**
 * Prometheus metrics in the text exposition format (version 0.0.4), written by hand: a handful of counters and
 * gauges does not need a client library. Token and cache series carry a `memory_kind` label, the kind of the
 * sessions' memory (DecodeSession.memoryKind): 'full' for a KV cache, 'hybrid' for a converted model's KV cache and
 * recurrent states, 'hybrid-window' when its converted groups are recurrent+window (exact windows + states). 'full' is always listed; another kind appears with its first session and stays.
 */
import type { Scheduler } from './scheduler.js';

/**
 * Seconds of per-second decode counts kept: the current, partial second and the RATE_WINDOW_S - 1 whole seconds
 * before it, over which tokens/s is averaged.
 */
const RATE_WINDOW_S = 10;

export class Metrics {
  private readonly requests = new Map<string, number>(); // `${route}\t${status}` -> count
  private readonly promptTokens = new Map<string, number>();
  private readonly completionTokens = new Map<string, number>();
  private readonly cancelled = new Map<string, number>();
  /** Tokens decoded per whole second (epoch seconds -> count), per memory kind, for the rate gauge. */
  private readonly perSecond = new Map<string, Map<number, number>>();
  private latencySum = 0;
  private latencyCount = 0;

  request(route: string, status: number, seconds?: number): void {
    const k = `${route}\t${status}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
    if (seconds !== undefined) {
      this.latencySum += seconds;
      this.latencyCount++;
    }
  }

  tokens(kind: string, prompt: number, completion: number, cancelled: boolean): void {
    add(this.promptTokens, kind, prompt);
    add(this.completionTokens, kind, completion);
    if (cancelled) add(this.cancelled, kind, 1);
  }

  /** One decoded token now (feeds tokens/s). */
  decoded(kind: string, now = Date.now()): void {
    let m = this.perSecond.get(kind);
    if (!m) this.perSecond.set(kind, (m = new Map()));
    const s = Math.floor(now / 1000);
    m.set(s, (m.get(s) ?? 0) + 1);
    for (const k of m.keys()) if (k <= s - RATE_WINDOW_S) m.delete(k);
  }

  /** Tokens decoded per second, averaged over the whole seconds of the window (the current one is not over yet). */
  tokensPerSecond(kind: string, now = Date.now()): number {
    const m = this.perSecond.get(kind);
    if (!m) return 0;
    const s = Math.floor(now / 1000);
    let n = 0;
    for (const [k, v] of m) if (k > s - RATE_WINDOW_S && k < s) n += v; // whole seconds only
    return n / (RATE_WINDOW_S - 1);
  }

  render(scheduler: Scheduler, fullBytes: (tokens: number) => number): string {
    const out: string[] = [];
    const series = (name: string, type: 'counter' | 'gauge', help: string, rows: [string, number][]): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of rows) out.push(`${name}${labels} ${v}`);
    };
    const kinds = new Set<string>(['full', ...this.promptTokens.keys(), ...scheduler.active.map((j) => j.session.memoryKind)]);
    const byKind = (m: Map<string, number>): [string, number][] => [...kinds].map((k) => [`{memory_kind="${k}"}`, m.get(k) ?? 0]);
    series('recurformer_requests_total', 'counter', 'HTTP requests by route and status.',
      [...this.requests].map(([k, v]) => {
        const [route, status] = k.split('\t');
        return [`{route="${route}",status="${status}"}`, v];
      }));
    // a summary without quantiles: _sum and _count under one TYPE line
    out.push('# HELP recurformer_request_duration_seconds Generation requests: seconds from queueing the tokenized prompt to the end of the reply.',
      '# TYPE recurformer_request_duration_seconds summary',
      `recurformer_request_duration_seconds_sum ${round(this.latencySum)}`,
      `recurformer_request_duration_seconds_count ${this.latencyCount}`);
    series('recurformer_prompt_tokens_total', 'counter', 'Prompt tokens prefilled.', byKind(this.promptTokens));
    series('recurformer_completion_tokens_total', 'counter', 'Tokens generated.', byKind(this.completionTokens));
    series('recurformer_cancelled_total', 'counter', 'Sessions cancelled (client gone or shutdown).', byKind(this.cancelled));
    series('recurformer_tokens_per_second', 'gauge', `Decode throughput, averaged over the last ${RATE_WINDOW_S - 1} whole seconds.`,
      [...kinds].map((k) => [`{memory_kind="${k}"}`, round(this.tokensPerSecond(k))]));
    series('recurformer_queue_depth', 'gauge', 'Requests waiting for a decode slot.', [['', scheduler.queueDepth]]);
    series('recurformer_active_sessions', 'gauge', 'Sessions decoding now.', [['', scheduler.activeCount]]);
    const held = new Map<string, number>(), full = new Map<string, number>();
    for (const j of scheduler.active) {
      add(held, j.session.memoryKind, j.session.bytes());
      add(full, j.session.memoryKind, fullBytes(j.session.length));
    }
    series('recurformer_cache_bytes', 'gauge', 'Bytes held by the memories of running sessions.', byKind(held));
    series('recurformer_cache_full_attention_bytes', 'gauge',
      'Bytes a full KV cache would hold for the same sessions at the same lengths.', byKind(full));
    return `${out.join('\n')}\n`;
  }
}

function add(m: Map<string, number>, k: string, v: number): void {
  m.set(k, (m.get(k) ?? 0) + v);
}

const round = (x: number): number => Math.round(x * 1000) / 1000;
