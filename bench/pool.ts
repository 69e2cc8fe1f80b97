/**
 * Thread-pool hand-off cost, above all when the pool has more threads than free cores (oversubscription).
 *
 *   node --import tsx bench/pool.ts [--threads 1,2,8] [--busy 1] [--ms 1500]
 *
 * --threads: pool sizes to time (setThreads); --busy k: start k busy-looping processes for the whole run (other load
 * on the cores); --ms: time budget per case. RECURFORMER_NATIVE_PATH picks the addon (e.g. a build of another
 * revision of native/src, to compare pools). Each case prints the wall time per call (fastest and median of
 * repeated batches: this is usually a shared machine) and the process CPU time per call, then the CPU the process
 * used while idle for 300 ms right after the case (a pool that spins while waiting burns wall x threads), and the
 * load other processes put on the machine during the case (from /proc/stat; --busy processes count as others).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadNative, type NativeAddon } from '../src/tensor/native.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

const load = loadNative();
if (!load.addon) {
  console.error(`native addon unavailable: ${load.error}`);
  process.exit(1);
}
const addon = load.addon as NativeAddon & Required<Pick<NativeAddon, 'gemm' | 'attention'>>;
const threadList = arg('threads', '1,2,8').split(',').map(Number);
const busy = Number(arg('busy', '0'));
const budgetMs = Number(arg('ms', '1500'));

function data(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed | 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = (s >>> 0) / 4294967296 - 0.5;
  }
  return a;
}

// strict jobs: a packed product split over rows (two barriers per block); claimed jobs: matrix-vector products and
// decode attention (items handed out from a counter); "decode mix": what one token of a small model issues.
const M = 256, N = 256, K = 256;
const A = data(M * K, 1), B = data(K * N, 2), C = new Float32Array(M * N);
const W = data(1024 * 1024, 3), x = data(1024, 4), y = new Float32Array(1024);
const S = 512, H = 8, Dh = 64;
const q = data(H * Dh, 5), kk = data(S * H * Dh, 6), v = data(S * H * Dh, 7), o = new Float32Array(H * Dh);
const lse = new Float32Array(H), none = new Float32Array(0);
const cases: Array<[string, () => void]> = [
  ['gemm 256x256x256 (strict)', () => addon.gemm(0, 0, M, N, K, 1, A, 0, B, 0, 0, C, 0, 1)],
  ['gemv 1x1024x1024 (claimed)', () => addon.gemm(0, 1, 1, 1024, 1024, 1, x, 0, W, 0, 0, y, 0, 1)],
  ['decode mix: 8 gemv 256x1024 + attention', () => {
    for (let i = 0; i < 8; i++) addon.gemm(0, 1, 1, 256, 1024, 1, x, 0, W, 0, 0, y, 0, 1);
    addon.attention(q, kk, v, 1, 1, S, H, H, Dh, 0.125, 1, S - 1, 0, 0, o, lse, none);
  }],
];

const children: ChildProcess[] = [];
for (let i = 0; i < busy; i++) children.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
const stopChildren = (): void => {
  for (const c of children) c.kill('SIGKILL');
};
process.on('exit', stopChildren);

/** Busy and total jiffies of the whole machine (Linux /proc/stat; zeros elsewhere). */
function machineTicks(): { busy: number; total: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - f[3]! - (f[4] ?? 0), total };
  } catch {
    return { busy: 0, total: 0 };
  }
}
const cores = readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length || 1;

/** Times fn in batches of `reps` calls until the budget is spent: per-call wall ms (min, median) and CPU ms. */
function time(fn: () => void): { min: number; median: number; cpu: number; others: number } {
  fn();
  let reps = 1;
  for (let t0 = performance.now(); performance.now() - t0 < 20; reps *= 2) for (let i = 0; i < reps; i++) fn();
  const walls: number[] = [];
  let cpuUs = 0, calls = 0;
  const start = performance.now();
  const m0 = machineTicks();
  while (walls.length < 5 || (walls.length < 200 && performance.now() - start < budgetMs)) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    walls.push((performance.now() - t0) / reps);
    const c = process.cpuUsage(c0);
    cpuUs += c.user + c.system;
    calls += reps;
  }
  // other processes' load during the case, in cores: machine busy time minus this process's CPU time
  const m1 = machineTicks(), wallMs = performance.now() - start;
  const busyMs = m1.total > m0.total ? ((m1.busy - m0.busy) / (m1.total - m0.total)) * cores * wallMs : 0;
  const others = Math.max(0, (busyMs - cpuUs / 1000) / wallMs);
  walls.sort((a, b) => a - b);
  return { min: walls[0]!, median: walls[walls.length >> 1]!, cpu: cpuUs / 1000 / calls, others };
}

async function idleCpuMs(ms: number): Promise<number> {
  const c0 = process.cpuUsage();
  await sleep(ms);
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

console.log(`addon ${load.path}\nsimd ${addon.info().simd}, busy processes ${busy}, budget ${budgetMs} ms per case`);
if (busy) await sleep(200);
for (const threads of threadList) {
  addon.setThreads(threads);
  for (const [name, fn] of cases) {
    const t = time(fn);
    const idle = await idleCpuMs(300);
    console.log(
      `threads ${threads}  ${name.padEnd(42)} min ${t.min.toFixed(3).padStart(8)} ms  median ${t.median
        .toFixed(3)
        .padStart(8)} ms  cpu/call ${t.cpu.toFixed(3).padStart(8)} ms  idle cpu ${idle.toFixed(1)} ms / 300 ms  other load ${t.others.toFixed(1)} cores`,
    );
  }
}
stopChildren();
