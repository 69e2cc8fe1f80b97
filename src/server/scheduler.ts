/**
 * The decode scheduler: at most `maxConcurrent` sessions decode at once, interleaved token by token (one step of
 * each running session per round, then a yield to the event loop so sockets, timers and new requests get their
 * turn); up to `maxQueue` more wait in FIFO order; beyond that `admit` (or `submit`) throws a 429 with Retry-After.
 *
 * A request is admitted before it is tokenized and holds its place until its session is submitted: the limit
 * counts running, queued and admitted requests together, so a burst that arrives before the decode loop runs
 * cannot slip past it, and a refused request costs no tokenizing.
 *
 * A job is cancelled at once (its cache freed) when its client goes away; `close` refuses new work, cancels the
 * queue, lets running sessions finish within a grace period and cancels the rest.
 */
import type { GenerateResult } from '../inference/generate.js';
import type { DecodeSession, StepEvent } from '../inference/session.js';
import { queueFull, shuttingDown } from './errors.js';

export interface JobOutcome {
  result: GenerateResult;
  /** True when the job was cancelled (client gone or shutdown) before it finished. */
  cancelled: boolean;
}

export type JobState = 'queued' | 'running' | 'finished' | 'cancelled' | 'failed';

export class Job {
  state: JobState = 'queued';
  readonly promise: Promise<JobOutcome>;
  readonly enqueuedAt = performance.now();
  startedAt = 0;
  private settle!: (o: JobOutcome) => void;
  private fail!: (e: unknown) => void;

  constructor(readonly session: DecodeSession, readonly onEvent: (ev: StepEvent, job: Job) => void,
    private readonly scheduler: Scheduler) {
    this.promise = new Promise<JobOutcome>((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
  }

  get settled(): boolean {
    return this.state === 'finished' || this.state === 'cancelled' || this.state === 'failed';
  }

  /** Cancels the job now, freeing its session's memory; a no-op once it has settled. */
  cancel(): void {
    this.scheduler.cancel(this);
  }

  /** @internal called by the scheduler only */
  end(state: 'finished' | 'cancelled' | 'failed', error?: unknown): void {
    if (this.settled) return;
    this.state = state;
    if (state === 'cancelled') this.session.cancel();
    else this.session.dispose();
    if (state === 'failed') this.fail(error);
    else this.settle({ result: this.session.result(), cancelled: state === 'cancelled' });
  }
}

export interface SchedulerOpts {
  maxConcurrent: number;
  maxQueue: number;
  /** Seconds a client is told to wait when the queue is full. */
  retryAfter?: number;
  /** Called when a job settles (metrics). */
  onSettled?: (job: Job) => void;
}

/** A place held for an admitted request while it is prepared (tokenized); `submit` takes it over. */
export interface Admission {
  /** Gives the place back (the request failed before submitting); a no-op the second time. */
  release(): void;
}

export class Scheduler {
  private readonly queued: Job[] = [];
  private readonly running: Job[] = [];
  /** Admitted requests not yet submitted. */
  private admitted = 0;
  private looping = false;
  private closing = false;
  private idleWaiters: (() => void)[] = [];

  constructor(readonly opts: SchedulerOpts) {}

  get queueDepth(): number {
    return this.queued.length;
  }

  get activeCount(): number {
    return this.running.length;
  }

  /** Running sessions, for the cache gauges. */
  get active(): readonly Job[] {
    return this.running;
  }

  /**
   * Takes a place for a request: throws a 503 ApiError while closing and a 429 when running, queued and admitted
   * requests already fill maxConcurrent + maxQueue. (Jobs wait in the queue until the loop's next round starts
   * them, so the running count alone would let a burst through.)
   */
  admit(): Admission {
    if (this.closing) throw shuttingDown();
    if (this.running.length + this.queued.length + this.admitted >= this.opts.maxConcurrent + this.opts.maxQueue) {
      throw queueFull(this.opts.retryAfter ?? 1);
    }
    this.admitted++;
    let held = true;
    return {
      release: () => {
        if (held) this.admitted--;
        held = false;
      },
    };
  }

  /** Queues a session on its admission (admitting it now without one); throws 503 while closing, 429 when full. */
  submit(session: DecodeSession, onEvent: (ev: StepEvent, job: Job) => void, admission: Admission = this.admit()): Job {
    admission.release();
    if (this.closing) throw shuttingDown();
    const job = new Job(session, onEvent, this);
    this.queued.push(job);
    void this.loop();
    return job;
  }

  cancel(job: Job): void {
    if (job.settled) return;
    remove(this.queued, job);
    remove(this.running, job);
    job.end('cancelled');
    this.opts.onSettled?.(job);
    this.checkIdle();
  }

  /** Stops accepting work, cancels queued jobs, waits up to `graceMs` for running ones, then cancels them. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    for (const job of [...this.queued]) this.cancel(job);
    if (this.running.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.idle(),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
      ]);
      clearTimeout(timer);
    }
    for (const job of [...this.running]) this.cancel(job);
  }

  /** Resolves when no job is queued or running. */
  idle(): Promise<void> {
    if (this.running.length === 0 && this.queued.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private checkIdle(): void {
    if (this.running.length > 0 || this.queued.length > 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** One round: each running session decodes one token; repeat until nothing is left. */
  private async loop(): Promise<void> {
    if (this.looping) return;
    this.looping = true;
    try {
      // let the submitting handler finish its synchronous setup (hijack, close listeners) first
      await tick();
      while (this.running.length > 0 || this.queued.length > 0) {
        while (this.running.length < this.opts.maxConcurrent && this.queued.length > 0) {
          const job = this.queued.shift()!;
          job.state = 'running';
          job.startedAt = performance.now();
          this.running.push(job);
        }
        for (const job of [...this.running]) {
          if (job.state !== 'running') continue; // cancelled during this round
          try {
            const ev = job.session.step();
            job.onEvent(ev, job);
            if (ev.done) this.finish(job, 'finished');
          } catch (e) {
            this.finish(job, 'failed', e);
          }
        }
        await tick();
      }
    } finally {
      this.looping = false;
      this.checkIdle();
    }
  }

  private finish(job: Job, state: 'finished' | 'failed', error?: unknown): void {
    remove(this.running, job);
    if (job.settled) return; // onEvent cancelled it (a failed write)
    job.end(state, error);
    this.opts.onSettled?.(job);
  }
}

/**
 * Runs tasks one at a time, each in its own turn of the event loop (setImmediate after the previous one): a burst
 * of long prompts is tokenized with sockets polled and decode rounds run between them, not in one blocking run.
 */
export class TurnQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => T): Promise<T> {
    const p = this.tail.then(tick).then(task);
    this.tail = p.catch(() => undefined);
    return p;
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function remove<T>(arr: T[], x: T): void {
  const i = arr.indexOf(x);
  if (i >= 0) arr.splice(i, 1);
}
