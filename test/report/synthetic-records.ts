/** Synthetic EvalRecords of every task (retrieval ones shaped per src/eval/record.ts) for the eval report tests. */
import { evalRecord, type EvalRecord, type EvalTask, type RetrievalCell, type RetrievalResult } from '../../src/eval/record.js';

function retrieval(task: EvalTask, label: string, second: 'depth' | 'hops', skill: number): EvalRecord<RetrievalResult> {
  const lengths = [256, 1024, 4096];
  const seconds = second === 'depth' ? [0, 0.25, 0.5, 1] : [1, 2, 4];
  const cells: RetrievalCell[] = lengths.flatMap((length, i) => seconds.map((s, j) => {
    const n = 8, correct = Math.max(0, Math.min(n, Math.round(n * skill - i * 2 - j)));
    return { length, [second]: s, n, correct, accuracy: correct / n, meanTokens: length - 3 };
  }));
  const byLength = lengths.map((length) => {
    const cs = cells.filter((c) => c.length === length);
    const n = cs.reduce((s, c) => s + c.n, 0);
    return { length, n, accuracy: cs.reduce((s, c) => s + c.correct, 0) / n };
  });
  const accuracy = cells.reduce((s, c) => s + c.correct, 0) / cells.reduce((s, c) => s + c.n, 0);
  return evalRecord({ task, model: 'models/m', memory: 'full', equalCache: null, label, seed: 0,
    settings: { lengths, samples: 8 }, result: { cells, misses: [], byLength, accuracy, chance: task === 'passkey' ? 1e-5 : 0.01 }, seconds: 3 });
}

export const LABELS = ['full attention', 'hybrid 50%', 'streaming @ hybrid'];

export function syntheticRecords(): EvalRecord[] {
  const out: EvalRecord[] = [];
  LABELS.forEach((label, k) => {
    const skill = 1 - k * 0.3;
    out.push(retrieval('passkey', label, 'depth', skill), retrieval('needle', label, 'depth', skill), retrieval('hashhop', label, 'hops', skill));
    out.push(evalRecord({ task: 'ppl', model: 'models/m', memory: k === 2 ? 'streaming' : 'full', equalCache: k === 2 ? 'conv' : null, label, seed: null,
      settings: { data: 'd.txt', ctx: 256, stride: 64 }, result: { nll: 1.4 + k * 0.1, ppl: Math.exp(1.4 + k * 0.1), tokens: 1000, windows: 13 }, seconds: 1 }));
    if (k > 0) {
      out.push(evalRecord({ task: 'agree', model: 'models/m', memory: 'full', equalCache: null, label, seed: null,
        settings: { teacher: 'models/t', ctx: 256 }, result: { tokens: 500, windows: 2, match: 0.9 - k * 0.1, kl: 0.05 * k, maxKl: 1, studentTop1: 0.5, teacherTop1: 0.6 }, seconds: 2 }));
    }
    const lengths = [1024, 4096, 16384].map((length) => ({ length, bytes: length * (1280 - k * 300) + 9920, fullAttentionBytes: length * 1280 }));
    out.push(evalRecord({ task: 'cost', model: 'models/m', memory: 'full', equalCache: null, label, seed: null,
      settings: { lengths: [1024, 4096, 16384], prefill: 512 }, seconds: 1,
      result: { kvBytesPerToken: 1280 - k * 300, constantBytes: 9920, fullKvBytesPerToken: 1280, lengths,
        prefill: { tokens: 512, seconds: 0.1, tokPerS: 5120 }, decode: { tokens: 32, seconds: 0.1, tokPerS: 320, at: 480, bytes: 1000 } } }));
  });
  return out;
}
