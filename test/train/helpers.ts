/** Shared fixtures of the training tests: stories260K converted at budget 0.5 (synthetic scores), a small corpus. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../../src/convert/apply.js';
import { planFromAnalysis, type AnalysisLike } from '../../src/convert/plan.js';
import { loadModel } from '../../src/io/model-load.js';
import { writeHfFolder } from '../../src/io/model-save.js';

export const TEACHER = new URL('../../models/stories260K', import.meta.url).pathname;
export const STORIES = new URL('../../data/tinystories-valid-excerpt/tinystories_val.txt', import.meta.url).pathname;

/** Group (l, g) scores (l * 4 + g) / 20: budget 0.5 replaces the later layers' groups. */
function fakeAnalysis(nLayers: number, nKv: number): AnalysisLike {
  const groups = [];
  for (let l = 0; l < nLayers; l++) {
    for (let g = 0; g < nKv; g++) {
      const v = (l * nKv + g) / (nLayers * nKv);
      groups.push({ layer: l, kvGroup: g, groupScore: { rr: { '16': v }, rrw: { '16': v } } });
    }
  }
  return { groups };
}

let converted: string | null = null;

/** A converted stories260K folder (made once per process). */
export function convertedModel(): string {
  if (converted) return converted;
  const base = loadModel(TEACHER);
  const cfg = base.config;
  const plan = planFromAnalysis(fakeAnalysis(cfg.nLayers, cfg.nKvHeads), cfg.nLayers, cfg.nKvHeads, { budget: 0.5 });
  const dir = join(tmp('conv'), 'model');
  writeHfFolder(dir, convert(base, plan, { chunk: 16 }), 'F32');
  converted = dir;
  return dir;
}

/** The first `chars` characters of the TinyStories excerpt as a file in a fresh temp dir. */
export function smallCorpus(chars = 40_000): string {
  const p = join(tmp('data'), 'stories.txt');
  writeFileSync(p, readFileSync(STORIES, 'utf8').slice(0, chars));
  return p;
}

const made: string[] = [];
process.on('exit', () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp dir, removed when the process exits. */
export function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `rf-train-${prefix}-`));
  made.push(d);
  return d;
}

/**
 * Lets the test runner write out its pending reports before runCli captures process.stdout: `train` yields to the
 * event loop between steps (for signals), and a report written then would land in the captured output.
 */
export function settleReporter(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 20));
}
