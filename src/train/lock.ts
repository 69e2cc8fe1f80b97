/**
 * One training per run folder: `DIR/train.lock`, created with O_EXCL ('wx') and holding the owner's pid. Two runs in
 * one folder would interleave their metrics and delete each other's checkpoint temp files. A lock whose pid is no
 * longer running (a killed run) is stale and taken over with a warning; a live one is an error naming the pid.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ArgumentError } from '../tensor/errors.js';

export const LOCK_FILE = 'train.lock';

function running(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: only checks that the process exists
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

/** The lock's pid, NaN when the file holds none, null when there is no lock file. */
function readPid(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : NaN;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; // released meanwhile
    throw e;
  }
}

/** Takes DIR's lock; returns the function that releases it. */
export function lockRunFolder(dir: string, warn: (message: string) => void): () => void {
  const path = join(dir, LOCK_FILE);
  for (;;) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = readPid(path);
    if (pid === null) continue;
    if (!Number.isNaN(pid) && running(pid)) {
      throw new ArgumentError('train', '--out', `${dir} is in use by another training (pid ${pid})`,
        `wait for it to end or stop it (kill ${pid}), or train into another folder; if pid ${pid} is not a training, delete ${path}`);
    }
    // an unreadable pid is a lock cut short by a crash (the pid is written right after the create): stale too
    warn(`taking over the stale lock ${path} of pid ${Number.isNaN(pid) ? '?' : pid}, which is no longer running`);
    rmSync(path, { force: true });
  }
  return () => {
    // only our own lock: never delete one another run took over
    if (readPid(path) === process.pid) rmSync(path, { force: true });
  };
}
