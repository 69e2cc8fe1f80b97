/** Data preparation shared by the demo and the end-to-end experiment. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ModelExperiment } from './pipeline.js';

/**
 * Splits a text file at the blank line nearest before `fraction` of its length into OUT/<name>.train.txt and
 * OUT/<name>.heldout.txt (kept if they exist). The held-out part is never seen by analysis, conversion or training.
 */
export function heldoutSplit(file: string, fraction: number, out: string): { train: string; heldout: string } {
  const name = basename(file).replace(/\.[a-z]+$/i, '');
  mkdirSync(out, { recursive: true });
  const train = join(out, `${name}.train.txt`), heldout = join(out, `${name}.heldout.txt`);
  if (!existsSync(train) || !existsSync(heldout)) {
    const s = readFileSync(file, 'utf8');
    const cut = s.lastIndexOf('\n\n', Math.floor(s.length * fraction)) + 2;
    writeFileSync(train, s.slice(0, cut));
    writeFileSync(heldout, s.slice(cut));
  }
  return { train, heldout };
}

/** The stories260K settings the demo and the end-to-end experiment share: data split, analysis, perplexity window. */
export function storiesBase(out: string): Pick<ModelExperiment, 'name' | 'model' | 'trainData' | 'calib' | 'analyzeSeq' | 'analyzeSamples' |
  'heldout' | 'pplCtx' | 'decodeAt' | 'seed'> {
  const stories = heldoutSplit('data/tinystories-valid-excerpt/tinystories_val.txt', 0.9, out);
  return {
    name: 'stories260K', model: 'models/stories260K', trainData: stories.train, calib: stories.train,
    analyzeSeq: 256, analyzeSamples: 16, heldout: stories.heldout, pplCtx: 256, decodeAt: 480, seed: 0,
  };
}
