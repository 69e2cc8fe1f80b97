/**
 * Writing a converted model so that a failed convert leaves nothing behind and success means the folder loads:
 * everything goes to a temporary sibling folder, which is loaded back and checked (config, recurformer section,
 * every tensor's name and shape, finite recurrent weights) before it is renamed into place. An existing model folder
 * is replaced only when the caller says so (`force`), and only after the new one has passed.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { loadModel } from '../io/model-load.js';
import { writeHfFolder } from '../io/model-save.js';
import { nonFiniteCount, writeFileAtomic } from '../io/tensor-file.js';
import { ArgumentError, FormatError } from '../tensor/errors.js';
import type { ConvertedModel } from './apply.js';
import type { ReplacementPlan } from './plan.js';

/** Throws when `out` may not be written: a file, a folder that holds something else, a model without `force`. */
export function checkOut(out: string, force: boolean): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new ArgumentError('convert', '--out', `${out} is a file`, 'pick a folder path for --out');
  if (readdirSync(out).length === 0) return;
  // --force replaces a model folder, never an arbitrary one (think `--out .`)
  if (!existsSync(join(out, 'config.json'))) {
    throw new ArgumentError('convert', '--out', `${out} is a folder that holds no model`, 'convert replaces only model folders: pick a new or empty --out');
  }
  if (!force) throw new ArgumentError('convert', '--out', `${out} already holds a model`, 'pass --force to replace it, or pick another --out');
}

/** Loads `dir` back as any later command will, and checks it is the model convert meant to write. */
function checkWritten(dir: string, conv: ConvertedModel, out: string): void {
  const back = loadModel(dir);
  if (!isDeepStrictEqual(back.recurformer, conv.recurformer)) {
    throw new FormatError(out, 'the recurformer section read back differs from the one written', 'this is a bug in convert; please report it');
  }
  for (const [name, t] of back.tensors) {
    // counted in the file, a chunk at a time: the check reads nothing into memory for good
    if (name.includes('.recurrent.') && nonFiniteCount(t) > 0) {
      throw new FormatError(out, 'holds non-finite values', 'check the plan\'s window and the analysis\' mean distances', name);
    }
  }
}


/** Writes the converted model and its plan.json to `out` atomically, after checking they load back. */
export function writeConverted(out: string, conv: ConvertedModel, plan: ReplacementPlan,
  o: { force?: boolean; dtype?: 'F32' | 'F16' | 'BF16'; maxShardBytes?: number } = {}): void {
  checkOut(out, o.force ?? false);
  const parent = dirname(resolve(out));
  mkdirSync(parent, { recursive: true });
  const tmp = join(parent, `.${basename(out)}.convert-${process.pid}-${Date.now().toString(36)}`);
  try {
    // the recurrent heads are written float32 whatever the dtype: the next step is training them, and a student read
    // with 16-bit projections peaked 0.85 GB higher in a 1B distill step (10.15 GiB against 9.35 GiB)
    writeHfFolder(tmp, conv, o.dtype ?? 'F32', o.maxShardBytes !== undefined ? { maxShardBytes: o.maxShardBytes } : {});
    writeFileAtomic(join(tmp, 'plan.json'), Buffer.from(`${JSON.stringify(plan, null, 2)}\n`));
    checkWritten(tmp, conv, out);
    if (!existsSync(out)) {
      renameSync(tmp, out);
      return;
    }
    // the old folder moves aside first, so a failed rename can put it back
    const old = `${tmp}.old`;
    renameSync(out, old);
    try {
      renameSync(tmp, out);
    } catch (e) {
      renameSync(old, out);
      throw e;
    }
    rmSync(old, { recursive: true, force: true });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
