/**
 * Signal handling for `recurformer serve`: the first SIGTERM or SIGINT starts the graceful shutdown (app.ts's
 * `shutdown`: running sessions may finish within the grace period, then every socket is closed); a second one
 * while that drains exits the process at once with 128 + the signal's number, the usual way to tell a server
 * that is waiting on its clients to stop now (Ctrl-C twice).
 */
import { constants } from 'node:os';
import type { RecurformerServer } from './app.js';

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** Resolves once a signal has shut `server` down; `log` gets one line per signal received. */
export function shutdownOnSignal(server: Pick<RecurformerServer, 'shutdown'>, log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let draining = false;
    const onSignal = (sig: NodeJS.Signals): void => {
      if (draining) {
        log(`${sig} during shutdown, exiting now`);
        process.exit(128 + constants.signals[sig]);
      }
      draining = true;
      log(`${sig}, shutting down (send it again to exit at once)`);
      server.shutdown().finally(() => {
        for (const s of SIGNALS) process.off(s, onSignal);
      }).then(resolve, reject);
    };
    for (const s of SIGNALS) process.on(s, onSignal);
  });
}
