/**
 * Loads the optional C++ addon (native/build/Release/recurformer.node). The addon exports functions named after
 * the kernels in kernels.ts with the same positional signatures; kernels it lacks fall back to the reference.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KERNEL_NAMES, type Kernels } from './kernels.js';

export interface NativeAddon extends Partial<Kernels> {
  info(): { simd: string; threads: number };
  setThreads(n: number): number;
  /** Benchmark helpers (native/src/hw.cpp): measured FMA GFLOPS and streaming-read GB/s. */
  measureFmaPeak?(seconds: number, threads: number): number;
  measureBandwidth?(bytes: number, seconds: number, threads: number): number;
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

let cached: NativeLoad | undefined;

export function loadNative(): NativeLoad {
  if (cached) return cached;
  const path = process.env.RECURFORMER_NATIVE_PATH ?? join(findRoot(), 'native', 'build', 'Release', 'recurformer.node');
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
