/**
 * Storage allocation with explicit reuse.
 *
 * Outside a scope every op allocates a fresh Float32Array (the GC frees it). Inside `scope(fn)` the buffers of
 * tensors created by `fn` return to a free list when `fn` ends, except those reachable from its return value or
 * passed to `keep`; later allocations of the same length reuse them. A decode loop wrapped in a scope therefore
 * allocates no new buffers after its first step.
 *
 * Contract (as tfjs `tidy`): a tensor made inside a scope must not be used after the scope unless it was returned
 * or kept. Do not open a scope around a forward pass whose graph you still need for backward.
 *
 * The free list is bounded: when an outermost scope ends with more than the pool limit (`setPoolLimit`, default
 * 512 MiB) pooled, the buffers of every length that scope did not ask for are dropped. A loop whose steps use the
 * same lengths (decode, a training step at a fixed shape) keeps its whole pool however large; a run over prompts of
 * different lengths (each length's prefill intermediates are never asked for again) no longer grows by the size of
 * one prefill per prompt, which took a 40-prompt needle eval of a converted model to 16 GB.
 */
import { ArgumentError } from './errors.js';

export interface Storage {
  data: Float32Array;
}

interface Scope {
  made: Storage[];
}

const scopes: Scope[] = [];
const free = new Map<number, Float32Array[]>();

/** Counters for tests and benchmarks: fresh buffers allocated, buffers served from the free list. */
export const memoryStats = { allocated: 0, reused: 0, pooledBytes: 0 };

let poolLimit = 512 * 1024 * 1024;
/** Lengths asked for during the current outermost scope. */
const usedNow = new Set<number>();

/** Sets the pool limit in bytes (see the header); returns the previous limit. */
export function setPoolLimit(bytes: number): number {
  if (!(bytes >= 0)) throw new ArgumentError('setPoolLimit', 'bytes', `= ${bytes} must be a number >= 0`, 'pass Infinity for no limit');
  const was = poolLimit;
  poolLimit = bytes;
  return was;
}

/** Drops the pooled buffers of lengths not asked for since the outermost scope began, if the pool is over the limit. */
function trimPool(): void {
  if (memoryStats.pooledBytes <= poolLimit) return;
  for (const [n, list] of free) {
    if (usedNow.has(n)) continue;
    for (const b of list) memoryStats.pooledBytes -= b.byteLength;
    free.delete(n);
  }
}

export function allocStorage(n: number): Storage {
  const top = scopes[scopes.length - 1];
  if (top) {
    usedNow.add(n);
    const list = free.get(n);
    const reused = list?.pop();
    if (reused) {
      memoryStats.reused++;
      memoryStats.pooledBytes -= reused.byteLength;
      const s = { data: reused };
      top.made.push(s);
      return s;
    }
  }
  memoryStats.allocated++;
  const s = { data: new Float32Array(n) };
  if (top) top.made.push(s);
  return s;
}

/** Anything a scope function may return: tensors are found inside arrays and plain objects. */
function collectStorages(value: unknown, out: Set<Storage>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  const maybe = value as { storage?: Storage; grad?: unknown };
  if (maybe.storage && maybe.storage.data instanceof Float32Array) {
    out.add(maybe.storage);
    if (maybe.grad) collectStorages(maybe.grad, out, seen);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectStorages(v, out, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collectStorages(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectStorages(v, out, seen);
  }
}

const kept: Set<Storage>[] = [];

/**
 * Keeps a tensor (or anything holding tensors) alive past every enclosing scope (a cache's keys, a recurrent
 * state): it is never returned to the free list, and the GC frees it once nothing references it. A scope's return
 * value, by contrast, survives only that scope.
 */
export function keep<T>(value: T): T {
  const set = kept[kept.length - 1];
  if (set) collectStorages(value, set, new Set());
  return value;
}

export function scope<T>(fn: () => T): T {
  scopes.push({ made: [] });
  kept.push(new Set());
  let result: T;
  try {
    result = fn();
  } finally {
    const sc = scopes.pop()!;
    const explicit = kept.pop()!;
    const returned = new Set<Storage>();
    if (result! !== undefined) collectStorages(result, returned, new Set());
    const outer = scopes[scopes.length - 1];
    // explicit keeps stay kept in the enclosing scope too (a nested scope must not shorten their life)
    if (outer) for (const s of explicit) kept[kept.length - 1]!.add(s);
    for (const s of sc.made) {
      if (explicit.has(s) || returned.has(s)) {
        if (outer) outer.made.push(s);
        continue;
      }
      let list = free.get(s.data.length);
      if (!list) free.set(s.data.length, (list = []));
      list.push(s.data);
      memoryStats.pooledBytes += s.data.byteLength;
      // Poison the released storage in place so a use-after-scope reads NaN instead of plausible numbers.
      s.data = POISON;
    }
    if (!outer) {
      trimPool();
      usedNow.clear();
    }
  }
  return result;
}

const POISON = new Float32Array(0);

/** Empties the free list (frees pooled memory to the GC). */
export function releasePool(): void {
  free.clear();
  memoryStats.pooledBytes = 0;
}

const scratchBySize = new Map<number, Float32Array>();

/**
 * A shared buffer of exactly n floats for a kernel output nobody reads afterwards (the log-sum-exp or rstd a
 * forward keeps only for its backward pass, when no backward will run). Its contents are overwritten by the next
 * caller of the same size; decode uses a handful of sizes, so it stops allocating after the first step.
 */
export function scratch(n: number): Float32Array {
  let b = scratchBySize.get(n);
  if (!b) {
    if (scratchBySize.size >= 64) scratchBySize.clear();
    scratchBySize.set(n, (b = new Float32Array(n)));
  }
  return b;
}
