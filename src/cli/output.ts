/**
 * Output paths. Each command checks where it will write BEFORE its work starts: a missing folder is created, and a
 * folder that cannot be written (read-only, no permission, a file in the way) is a typed error naming the path, so a
 * bad --out fails in a second instead of after an hour of work whose result is then lost. The write itself is wrapped
 * too, since a disk can fill up during the work.
 */
import { closeSync, existsSync, mkdirSync, openSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ArgumentError } from '../tensor/errors.js';

/** What each file-system error code means for an output path, and what to do about it. */
const WRITE_ERRORS: Record<string, [why: string, hint: string]> = {
  ENOSPC: ['no space is left on the device', 'free some space or write to another disk'],
  EDQUOT: ['the disk quota is exhausted', 'free some space or write to another disk'],
  EROFS: ['the file system is read-only', 'write to a writable folder'],
  EACCES: ['permission denied', 'write to a folder you may write to'],
  EPERM: ['permission denied', 'write to a folder you may write to'],
  ENOTDIR: ['a part of the path is a file, not a folder', 'check the path'],
  EEXIST: ['a part of the path is a file, not a folder', 'check the path'], // what mkdir -p says of /dev/null/x
  EISDIR: ['it is a folder', 'pass a file path'],
  ENOENT: ['its folder does not exist (removed while running?)', 'check the path'],
};

/** A file-system error while writing `path` as a typed error naming the path (not the temp file beside it). */
export function outputError(op: string, flag: string, path: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  const known = code === undefined ? undefined : WRITE_ERRORS[code];
  return known ? new ArgumentError(op, flag, `cannot write ${path}: ${known[0]} (${code})`, known[1]) : e;
}

/** Runs `write`, turning a file-system failure into outputError. */
export function writingTo<T>(op: string, flag: string, path: string, write: () => T): T {
  try {
    return write();
  } catch (e) {
    throw outputError(op, flag, path, e);
  }
}

/** Creates `dir` (with its parents) and proves it writable by creating and removing a probe file in it. */
function prepareFolder(op: string, flag: string, dir: string, out: string): void {
  writingTo(op, flag, out, () => {
    mkdirSync(dir, { recursive: true });
    // permission bits do not tell (root, ACLs, read-only mounts): only a real write does
    const probe = join(dir, `.recurformer-probe-${process.pid}-${Date.now().toString(36)}`);
    closeSync(openSync(probe, 'wx'));
    unlinkSync(probe);
  });
}

/** FILE will be written: it must not be a folder, and its folder is created and must be writable. */
export function prepareOutFile(op: string, flag: string, file: string): void {
  if (existsSync(file) && statSync(file).isDirectory()) throw new ArgumentError(op, flag, `${file} is a folder`, 'pass a file path');
  prepareFolder(op, flag, dirname(resolve(file)), file);
}

/** DIR will hold the output files: it must not be a file, and it is created and must be writable. */
export function prepareOutDir(op: string, flag: string, dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new ArgumentError(op, flag, `${dir} is a file, not a folder`, 'pass a folder path (it is created when missing)');
  }
  prepareFolder(op, flag, dir, dir);
}
