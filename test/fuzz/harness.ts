/**
 * The fuzz harness: seeded, time-boxed, one input at a time through a worker thread (worker.ts).
 *
 * Each input is made from one 32-bit seed (the base seed mixed with the input's index), so a failure is replayed
 * from its seed alone. The supervisor (this thread) makes the input files in a fresh folder, sends the request,
 * and judges the reply: success, or a RecurformerError whose message names a file of the input. Anything else
 * fails the target: an untyped error (TypeError, RangeError...), a typed error naming no file of the input, an
 * inconsistency the worker found (InvariantError), no answer within the timeout (the worker is terminated and
 * restarted), the worker dying (heap limit), or the process' RSS over its bound (sampled while the input runs).
 *
 * Environment:
 *   RECURFORMER_FUZZ_SECONDS   seconds per target (default: the target's CI budget), to lengthen a campaign
 *   RECURFORMER_FUZZ_SEED      base seed (decimal or 0x hex; default fixed, so CI runs the same inputs)
 *   RECURFORMER_FUZZ_REPLAY    TARGET:SEED[,SEED...] runs only those inputs of that target (other targets skip)
 *   RECURFORMER_FUZZ_TIMEOUT_MS  per-input limit (default 10000)
 *   RECURFORMER_FUZZ_RSS_MB    RSS bound of the fuzz process (default 1536)
 *   RECURFORMER_FUZZ_KEEP      folder where failing inputs are kept (default $TMPDIR/recurformer-fuzz-failures)
 */
import { closeSync, copyFileSync, cpSync, ftruncateSync, linkSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext } from 'node:test';
import { Worker } from 'node:worker_threads';
import { inputSeed, Rng } from './mutate.js';
import type { Reply, Request } from './worker.js';

export const DEFAULT_BASE_SEED = 0x5eed_2024;

function envNumber(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}=${v} is not a number`);
  return n;
}

export const hex = (n: number): string => n.toString(16).padStart(8, '0');

/** The worker: started on first use, restarted after a timeout or a crash. */
export class Sandbox {
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private next = 1;
  private pending = new Map<number, (r: Reply) => void>();
  private died: ((e: Error) => void) | null = null;
  /** Worker (re)starts, for the report. */
  starts = 0;

  private start(): Promise<void> {
    const url = new URL('./worker.ts', import.meta.url).href;
    // tsx registered inside the worker: a worker does not inherit the parent's --import hooks on Node 20
    const w = new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}); })`, {
      eval: true, resourceLimits: { maxOldGenerationSizeMb: 1024 }, env: process.env,
    });
    this.worker = w;
    this.starts++;
    this.ready = new Promise((resolve, reject) => {
      w.on('message', (m: { ready?: true; id?: number; reply?: Reply }) => {
        if (m.ready) resolve();
        else if (m.id !== undefined) {
          const done = this.pending.get(m.id);
          this.pending.delete(m.id);
          done?.(m.reply!);
        }
      });
      const fail = (e: Error) => {
        reject(e);
        this.worker = null;
        this.ready = null;
        this.died?.(e);
      };
      w.on('error', fail);
      w.on('exit', (code) => fail(new Error(`the fuzz worker exited (code ${code})`)));
    });
    return this.ready;
  }

  /** Run one request; a timeout or a dead worker becomes a reply too (not typed). */
  async run(req: Request, timeoutMs: number): Promise<Reply & { ms: number }> {
    if (!this.ready) await this.start();
    else await this.ready;
    const id = this.next++;
    const t0 = performance.now();
    const reply = await new Promise<Reply>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        void this.kill();
        resolve({ ok: false, typed: false, name: 'Timeout', message: `no answer within ${timeoutMs} ms (hang?)`, stack: '' });
      }, timeoutMs);
      this.pending.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.died = (e) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve({ ok: false, typed: false, name: 'WorkerDied', message: e.message, stack: e.stack ?? '' });
      };
      this.worker!.postMessage({ id, req });
    });
    this.died = null;
    return { ...reply, ms: performance.now() - t0 };
  }

  async kill(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    this.ready = null;
    if (w) {
      w.removeAllListeners('exit');
      w.removeAllListeners('error');
      await w.terminate();
    }
  }
}

/** Seed files, made once per process by the worker. */
let seedRoot: string | null = null;
export function scratch(): string {
  if (!seedRoot) {
    seedRoot = mkdtempSync(join(tmpdir(), 'recurformer-fuzz-'));
    process.on('exit', () => rmSync(seedRoot!, { recursive: true, force: true }));
  }
  return seedRoot;
}

export async function makeSeedSet<T>(box: Sandbox, seeds: Extract<Request, { kind: 'seeds' }>['seeds']): Promise<T> {
  const r = await box.run({ kind: 'seeds', seeds, root: join(scratch(), 'seeds', seeds) }, 120_000);
  if (!r.ok) throw new Error(`making the ${seeds} seeds failed: ${r.name}: ${r.message}\n${r.stack}`);
  return r.value as T;
}

/** Put `file` of folder `from` into `to` without copying its bytes (a hard link; a copy across filesystems). */
export function linkInto(from: string, to: string, file: string): void {
  try {
    linkSync(join(from, file), join(to, file));
  } catch {
    copyFileSync(join(from, file), join(to, file));
  }
}

export interface Input {
  request: Request;
  /** The mutations made, for the failure report. */
  log: string[];
  /**
   * Set (to the bug's name) for an input known to hit a loader bug that would cost the time limit (a hang): it is
   * not run, and reported with the target's other known issues. Remove the check once the bug is fixed.
   */
  known?: string;
}

export interface Target {
  name: string;
  /** CI budget in seconds (RECURFORMER_FUZZ_SECONDS overrides it). */
  seconds: number;
  /** Stop after this many inputs even within the time (the harness' own test). */
  maxInputs?: number;
  /** Make the input in `dir` (an empty folder); errors must name a path under `dir`. */
  make(rng: Rng, dir: string): Input;
  /**
   * Known loader bugs: a failure for which this returns a bug's name is reported as a TODO naming the bug (the
   * lead fixes the loader), not as a failure of the target.
   */
  known?(f: Failure): string | null;
}

export interface Failure {
  seed: number;
  log: string[];
  name: string;
  message: string;
  stack: string;
  kept: string;
}

/** The same box for every target of a test file (one worker start per file), ended with the file. */
export const box = new Sandbox();
after(() => box.kill());

/** Run a target for its time budget (or the replay list); fail the test with every failure's seed. */
export async function fuzz(t: TestContext, target: Target, sandbox: Sandbox = box): Promise<void> {
  const replay = process.env.RECURFORMER_FUZZ_REPLAY;
  let seeds: number[] | null = null;
  if (replay) {
    const [name, list] = replay.split(':');
    if (name !== target.name) {
      t.skip(`RECURFORMER_FUZZ_REPLAY is for ${name}`);
      return;
    }
    seeds = (list ?? '').split(',').filter(Boolean).map((s) => parseInt(s, 16) >>> 0);
  }
  const base = envNumber('RECURFORMER_FUZZ_SEED', DEFAULT_BASE_SEED) >>> 0;
  const seconds = envNumber('RECURFORMER_FUZZ_SECONDS', target.seconds);
  const timeoutMs = envNumber('RECURFORMER_FUZZ_TIMEOUT_MS', 10_000);
  const rssLimit = envNumber('RECURFORMER_FUZZ_RSS_MB', 1536) * 2 ** 20;
  const keep = process.env.RECURFORMER_FUZZ_KEEP || join(tmpdir(), 'recurformer-fuzz-failures');
  const work = join(scratch(), 'inputs', target.name);
  mkdirSync(work, { recursive: true });
  mkdirSync(keep, { recursive: true });

  const failures: Failure[] = [];
  const known = new Map<string, Failure[]>();
  const outcomes = new Map<string, number>();
  let peak = 0;
  let ok = 0;
  let n = 0;
  let slowest = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  for (let i = 0; seeds ? i < seeds.length : performance.now() < deadline && i < (target.maxInputs ?? Infinity); i++) {
    const seed = seeds ? seeds[i]! : inputSeed(base, i);
    const dir = join(work, hex(seed));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const input = target.make(new Rng(seed), dir);
    if (input.known !== undefined && !seeds) {
      n++;
      const kept = join(keep, `${target.name}-${hex(seed)}`);
      rmSync(kept, { recursive: true, force: true });
      cpSync(dir, kept, { recursive: true });
      known.set(input.known, [...(known.get(input.known) ?? []), { seed, log: input.log, name: 'not run', message: input.known, stack: '', kept }]);
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    let inputPeak = 0;
    const sampler = setInterval(() => {
      inputPeak = Math.max(inputPeak, process.memoryUsage.rss());
    }, 20);
    let r = await sandbox.run(input.request, timeoutMs);
    clearInterval(sampler);
    inputPeak = Math.max(inputPeak, process.memoryUsage.rss());
    peak = Math.max(peak, inputPeak);
    slowest = Math.max(slowest, r.ms);
    n++;
    if (inputPeak > rssLimit) {
      r = { ok: false, typed: false, name: 'RssLimit', message: `RSS reached ${(inputPeak / 2 ** 20).toFixed(0)} MB (bound ${rssLimit / 2 ** 20} MB)`, stack: '', ms: r.ms };
      await sandbox.kill(); // give the memory back before the next input
    }
    const verdict = judge(r, dir);
    if (verdict === null) {
      if (r.ok) ok++;
      else outcomes.set(summary(r.message, dir), (outcomes.get(summary(r.message, dir)) ?? 0) + 1);
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    const kept = join(keep, `${target.name}-${hex(seed)}`);
    rmSync(kept, { recursive: true, force: true });
    cpSync(dir, kept, { recursive: true });
    rmSync(dir, { recursive: true, force: true });
    const f: Failure = { seed, log: input.log, name: r.ok ? '' : r.name, message: verdict, stack: r.ok ? '' : r.stack, kept };
    const bug = target.known?.(f) ?? null;
    if (bug !== null) known.set(bug, [...(known.get(bug) ?? []), f]);
    else failures.push(f);
    if (failures.length >= 5) break;
  }
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  const top = [...outcomes.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([m, c]) => `  ${c} x ${m}`).join('\n');
  const nKnown = [...known.values()].reduce((s, fs) => s + fs.length, 0);
  t.diagnostic(`${target.name}: ${n} inputs in ${secs} s (base seed 0x${hex(base)}): ${ok} loaded, ${n - ok - failures.length - nKnown} typed errors, ` +
    `${failures.length} failures, ${nKnown} known issues; slowest input ${slowest.toFixed(0)} ms; peak RSS ${(peak / 2 ** 20).toFixed(0)} MB; worker starts ${sandbox.starts}\n` +
    `most frequent rejections:\n${top}`);
  for (const [bug, fs] of known) {
    t.todo(`known issue: ${bug} (${fs.length} inputs, e.g. ${replayHint(target.name, fs[0]!.seed)})`);
  }
  if (failures.length > 0) {
    const report = failures.map((f) => `- input seed ${hex(f.seed)}: ${f.log.join('; ')}\n  replay: ${replayHint(target.name, f.seed)}\n` +
      `  input kept in ${f.kept}\n  ${f.message}\n  ${f.stack.split('\n').slice(0, 12).join('\n  ')}`).join('\n');
    throw new Error(`fuzz target ${target.name}: ${failures.length} failing inputs (base seed 0x${hex(base)}, ${n} inputs)\n${report}`);
  }
  if (!seeds) {
    if (n < 5) throw new Error(`fuzz target ${target.name}: only ${n} inputs ran in ${secs} s`);
  }
}

/** Each target is in test/fuzz/<name>.test.ts. */
export function replayHint(target: string, seed: number): string {
  return `RECURFORMER_FUZZ_REPLAY=${target}:${hex(seed)} node scripts/run-tests.mjs test/fuzz/${target}.test.ts`;
}

/** null when the reply is acceptable, else why not. */
export function judge(r: Reply, dir: string): string | null {
  if (r.ok) return null;
  if (!r.typed) return `${r.name} is not a RecurformerError: ${r.message}`;
  if (!r.message.includes(dir)) return `${r.name} names no file of the input (${dir}): ${r.message}`;
  return null;
}

/** An error message with the input's folder and numbers taken out, to count kinds of rejection. */
function summary(message: string, dir: string): string {
  return message.split('\n')[0]!.replaceAll(dir, '').replace(/\d+/g, 'N').slice(0, 110);
}

/** Write a mutated file: its bytes, then its sparse tail of zeros. */
export function writeMutated(path: string, m: { bytes: Buffer; tail: number }): void {
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, m.bytes);
    if (m.tail > 0) ftruncateSync(fd, m.bytes.length + m.tail);
  } finally {
    closeSync(fd);
  }
}
