/** The real CLI in a child process: `serve --port 0` comes up on loopback and SIGTERM exits 0 after a running stream ends. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('recurformer serve: SIGTERM finishes the running stream, then the process exits 0', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, RECURFORMER_QUIET: '1' };
  delete env.NODE_TEST_CONTEXT; // or the child would think it is a test file
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    "import { main } from './src/cli/main.ts'; process.exitCode = await main(['serve', '--port', '0', '--max-concurrent', '2']);"],
  { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no startup line: ${stderr}`)), 20_000);
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /serving \S+ on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
    });
    assert.deepEqual(await (await fetch(`${url}/health`)).json(), { status: 'ok' });
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stories260K', prompt: '', max_tokens: 60, temperature: 0, stream: true }) });
    const reader = res.body!.getReader();
    await reader.read(); // the stream is running
    child.kill('SIGTERM');
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    assert.ok(text.endsWith('data: [DONE]\n\n'), text.slice(-200));
    assert.equal(await exited, 0);
    assert.match(stderr, /SIGTERM, shutting down/);
  } finally {
    child.kill('SIGKILL');
  }
});
