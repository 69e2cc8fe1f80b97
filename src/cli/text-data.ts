/**
 * The text behind a --data path, read the way `train` reads its data (listSources and documents in src/train/data.ts):
 * a text file, a .jsonl file (each line's --text-key field) or a folder of them. analyze, eval ppl / agree, the needle
 * haystack and convert's calibration all read through here, so a path one command accepts every command accepts.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { documents, listSources } from '../train/data.js';
import { ArgumentError } from '../tensor/errors.js';

/** Above this share of NUL bytes and invalid UTF-8 sequences (decoded as U+FFFD), a file is not text. */
const NOT_TEXT_SHARE = 0.01;

export interface TextDataOptions {
  /** JSONL field holding the text (default "text", as for train). */
  textKey?: string;
  /** Stop reading files once this many characters are read (the caller uses only a prefix). */
  maxChars?: number;
  /** Where warnings go (default: stderr). */
  warn?: (message: string) => void;
}

/** Share of the characters of `text` that are NUL or U+FFFD (what invalid UTF-8 decodes to). */
export function notTextShare(text: string): number {
  let bad = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0 || c === 0xfffd) bad++;
  }
  return text.length === 0 ? 0 : bad / text.length;
}

/**
 * The documents of `path` joined by blank lines. A file that does not look like text gets a warning naming it: scores
 * on random bytes are numbers (ppl 1e9) that mean nothing, and nothing else would say so.
 */
export function readTextData(op: string, flag: string, path: string, o: TextDataOptions = {}): string {
  if (!existsSync(path)) {
    throw new ArgumentError(op, flag, `${path} does not exist`,
      'pass a text file, a .jsonl file or a folder of them, e.g. data/tinystories-valid-excerpt/tinystories_val.txt');
  }
  const warn = o.warn ?? ((m: string) => process.stderr.write(`recurformer: warning: ${m}\n`));
  const parts: string[] = [];
  let chars = 0;
  for (const file of listSources(path)) {
    const text = [...documents(file, { textKey: o.textKey ?? 'text' })].join('\n\n');
    const share = notTextShare(text);
    if (share > NOT_TEXT_SHARE) {
      warn(`${file} does not look like text: ${(share * 100).toFixed(1)}% of its characters are NUL bytes or invalid UTF-8, so results on it mean little`);
    }
    parts.push(text);
    chars += text.length;
    if (o.maxChars !== undefined && chars >= o.maxChars) break;
  }
  return parts.join('\n\n');
}

/** --text-key, for every command that reads --data (train has the same flag). */
export function addTextKeyOption(cmd: Command): Command {
  return cmd.option('--text-key <k>', 'field holding the text in .jsonl data', 'text');
}
