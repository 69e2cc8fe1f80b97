/**
 * Quantizer and dequantizer throughput and error, per ggml type, on Gaussian weights (sigma 0.02, like a trained
 * model's matrices): relative RMS error, quantize and dequantize speed in millions of values per second.
 *
 *   node --import tsx bench/kquant.ts [--values 4194304]
 */
import { parseArgs } from 'node:util';
import { dequantize, GgmlType, quantize, type QuantType } from '../src/io/ggml-quants.js';

const { values: args } = parseArgs({ options: { values: { type: 'string', default: String(1 << 22) } } });
const n = Math.ceil(Number(args.values) / 256) * 256;

let s = 12345;
const u = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s + 0.5) / 2 ** 32; };
const x = Float32Array.from({ length: n }, () => 0.02 * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));

const rows: string[] = ['| type | relative RMS error | quantize (M values/s) | dequantize (M values/s) |', '| --- | --- | --- | --- |'];
for (const type of [GgmlType.Q8_0, GgmlType.Q5_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K] as QuantType[]) {
  const t0 = performance.now();
  const q = quantize(type, x);
  const t1 = performance.now();
  const y = dequantize(type, q, n);
  const t2 = performance.now();
  let e = 0, ss = 0;
  for (let i = 0; i < n; i++) {
    e += (x[i]! - y[i]!) ** 2;
    ss += x[i]! ** 2;
  }
  rows.push(`| ${GgmlType[type]} | ${Math.sqrt(e / ss).toFixed(4)} | ${(n / (t1 - t0) / 1e3).toFixed(1)} | ${(n / (t2 - t1) / 1e3).toFixed(1)} |`);
}
process.stdout.write(`${n} values, one thread\n\n${rows.join('\n')}\n`);
