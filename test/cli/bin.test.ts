/** The bin shim as a shell runs it: a reader that closes the pipe early ends the output quietly, exit code 0. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const skip = existsSync(`${repo}/dist/src/cli/main.js`) ? false : 'dist/ is not built (npm run build)';

test('`recurformer inspect | true` (the reader is gone before we write) exits 0 without an EPIPE trace', { skip }, () => {
  for (let i = 0; i < 3; i++) {
    const r = spawnSync('sh', ['-c', 'node bin/recurformer.js inspect --json | true; echo "status=$?" >&2'], { cwd: repo, encoding: 'utf8' });
    assert.doesNotMatch(r.stderr, /EPIPE|Unhandled 'error'/, r.stderr);
  }
  const pipefail = spawnSync('bash', ['-o', 'pipefail', '-c', 'node bin/recurformer.js inspect | head -c 1 >/dev/null'], { cwd: repo, encoding: 'utf8' });
  assert.equal(pipefail.status, 0, pipefail.stderr);
});
