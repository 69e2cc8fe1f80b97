/** Data preparation shared by the demo and the end-to-end experiment. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

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
