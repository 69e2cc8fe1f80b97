/**
 * Loads the optional C++ addon (native/build/Release/recurformer.node). The addon exports functions named after
 * the kernels in kernels.ts with the same positional signatures; kernels it lacks fall back to the reference.
 * RECURFORMER_NATIVE_PATH loads it from another file instead; RECURFORMER_NATIVE_PATH=none disables it, so the
 * process runs as on a machine where it was never built (docs/engine.md, "Backends").
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError } from './errors.js';
import { KERNEL_NAMES, type Kernels } from './kernels.js';

export interface NativeAddon extends Partial<Kernels> {
  /**
   * `vnni`: the quantized products use AVX-512 VNNI (else AVX2 or portable, as `simd`); `amx`: the K-quant products
   * of 16 or more rows (prefill) use AMX tiles; `attention`: the attention kernels' set (avx512, avx2 or scalar).
   */
  info(): { simd: string; threads: number; vnni: boolean; amx: boolean; attention: string };
  setThreads(n: number): number;
}

export interface NativeLoad {
  addon: NativeAddon | null;
  /** Why the addon is unavailable (null when it loaded). */
  error: string | null;
  path: string;
}

function findRoot(): string {
  // Works from src/tensor (tsx) and from dist/src/tensor (compiled): walk up to the folder with package.json.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native'))) return dir;
    dir = dirname(dir);
  }
  return dirname(dirname(dirname(fileURLToPath(import.meta.url))));
}

/** The most threads RECURFORMER_THREADS may ask for: more only oversubscribe the cores, and far more fail to start. */
export function maxThreads(cores = availableParallelism()): number {
  return Math.min(256, 4 * cores);
}

/**
 * RECURFORMER_THREADS checked as the addon will read it (native/src/runtime.cpp uses atoi when its pool starts, so
 * "abc" was silently ignored and 100000 aborted the process when thread creation failed). Returns the value to put in
 * the environment (null: leave it) and a warning; a value that is not a positive integer is a BackendError.
 */
export function checkThreadsEnv(value: string | undefined, cores = availableParallelism()): { value: string | null; warning: string | null } {
  if (value === undefined || value.trim() === '') return { value: null, warning: null };
  // digits only: atoi would read "1e3" as 1 and "0x10" as 0 where Number() reads 1000 and 16
  const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(n >= 1)) {
    throw new BackendError(`RECURFORMER_THREADS=${value} is not a positive integer`, `set it to a thread count such as ${cores}, or unset it to use every core`);
  }
  const max = maxThreads(cores);
  if (n > max) return { value: String(max), warning: `RECURFORMER_THREADS=${value} is more than ${max} (4 x ${cores} cores, at most 256); using ${max}` };
  return { value: null, warning: null };
}

let cached: NativeLoad | undefined;

/** The RECURFORMER_NATIVE_PATH value that disables the addon (the test suite's no-compiler run uses it). */
export const NATIVE_DISABLED = 'none';

export function loadNative(): NativeLoad {
  if (cached) return cached;
  // before the addon loads: its thread pool reads the variable once, when it starts
  const threads = checkThreadsEnv(process.env.RECURFORMER_THREADS);
  if (threads.value !== null) process.env.RECURFORMER_THREADS = threads.value;
  if (threads.warning && !process.env.RECURFORMER_QUIET) process.stderr.write(`recurformer: warning: ${threads.warning}\n`);
  const path = process.env.RECURFORMER_NATIVE_PATH ?? join(findRoot(), 'native', 'build', 'Release', 'recurformer.node');
  if (path === NATIVE_DISABLED) {
    cached = { addon: null, error: `disabled by RECURFORMER_NATIVE_PATH=${NATIVE_DISABLED}`, path };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    const addon = require(path) as NativeAddon;
    cached = { addon, error: null, path };
  } catch (e) {
    cached = { addon: null, error: (e as Error).message.split('\n')[0]!, path };
  }
  return cached;
}

/** Kernel names the loaded addon implements. */
export function nativeKernelNames(addon: NativeAddon): string[] {
  return KERNEL_NAMES.filter((n) => typeof (addon as unknown as Record<string, unknown>)[n] === 'function');
}
