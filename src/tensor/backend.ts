/**
 * Backend selection. A backend is a complete `Kernels` table: the reference kernels overlaid with whatever the
 * native addon implements. RECURFORMER_BACKEND=reference|native forces one; by default native is used when the
 * addon loads, otherwise reference with a warning on stderr, once per process.
 */
import { sep } from 'node:path';
import { BackendError } from './errors.js';
import { KERNEL_NAMES, type Kernels } from './kernels.js';
import { loadNative, nativeKernelNames } from './native.js';
import { referenceKernels } from './reference/index.js';

export type BackendName = 'reference' | 'native';

export interface Backend {
  readonly name: BackendName;
  readonly kernels: Kernels;
  /** Kernels served natively (empty for the reference backend). */
  readonly nativeKernels: readonly string[];
  readonly simd: string;
  readonly threads: number;
  /** The instruction set of the quantized products (gemmQ): 'vnni' (AVX-512 VNNI), else as `simd`. */
  readonly quantSimd: string;
}

let current: Backend | undefined;
let warned = false;

function makeReference(): Backend {
  return { name: 'reference', kernels: referenceKernels, nativeKernels: [], simd: 'none', threads: 1, quantSimd: 'none' };
}

function makeNative(): Backend | string {
  const load = loadNative();
  if (!load.addon) return load.error ?? 'unknown error';
  const addon = load.addon;
  const names = nativeKernelNames(addon);
  const table: Record<string, unknown> = {};
  for (const n of KERNEL_NAMES) {
    const f = (addon as unknown as Record<string, unknown>)[n];
    table[n] = typeof f === 'function' ? f : (referenceKernels as unknown as Record<string, unknown>)[n];
  }
  const info = addon.info();
  return { name: 'native', kernels: table as unknown as Kernels, nativeKernels: names, simd: info.simd, threads: info.threads,
    quantSimd: info.vnni ? 'vnni' : info.simd };
}

/** How to build the addon where the package is: a user's project has no `build:native` script, only our bin. */
function buildHint(): string {
  const inDependency = loadNative().path.split(sep).includes('node_modules');
  return `install python3, make and a C++17 compiler, then run ${inDependency ? '`npx recurformer-build-native`' : '`npm run build:native`'}`;
}

/** Returns a backend by name without making it current (tests compare the two). */
export function getBackend(name: BackendName): Backend {
  if (name === 'reference') return makeReference();
  const b = makeNative();
  if (typeof b === 'string') {
    throw new BackendError(`native backend unavailable: ${b}`, buildHint());
  }
  return b;
}

/** The backend all ops use. */
export function backend(): Backend {
  if (current) return current;
  const forced = process.env.RECURFORMER_BACKEND;
  if (forced !== undefined && forced !== '' && forced !== 'reference' && forced !== 'native') {
    throw new BackendError(`RECURFORMER_BACKEND=${forced} is not a backend`, 'use reference or native');
  }
  if (forced === 'reference') {
    current = makeReference();
  } else {
    const b = makeNative();
    if (typeof b === 'string') {
      if (forced === 'native') {
        throw new BackendError(`RECURFORMER_BACKEND=native but the addon did not load: ${b}`, buildHint());
      }
      if (!warned && !process.env.RECURFORMER_QUIET) {
        warned = true;
        // the cost is large enough to say plainly: every command runs tens of times longer
        process.stderr.write(`recurformer: native backend unavailable (${b});\n` +
          '  using the TypeScript reference backend: single-threaded and about 75x slower than the native addon.\n' +
          `  To get the native backend: ${buildHint()}. (RECURFORMER_QUIET=1 hides this message.)\n`);
      }
      current = makeReference();
    } else {
      current = b;
    }
  }
  return current;
}

/** Makes `name` the current backend (tests and benchmarks). */
export function setBackend(name: BackendName): Backend {
  current = getBackend(name);
  return current;
}

/** Shorthand for the current kernel table. */
export function K(): Kernels {
  return backend().kernels;
}
