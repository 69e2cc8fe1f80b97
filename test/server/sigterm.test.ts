/**
 * Signals, in child processes: the real CLI's `serve --port 0` comes up on loopback and SIGTERM exits 0 after a
 * running stream ends, even with clients holding unfinished connections; the signal helper (signals.ts) exits at
 * once on a second signal during the drain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { ROOT } from './helpers.js';

interface Child {
  child: ChildProcess;
  stderr(): string;
  /** Resolves once stderr matches `re` (rejects when the process exits first, or after 20 s). */
  waitFor(re: RegExp): Promise<RegExpExecArray>;
  /** The exit code, or the signal that killed it; rejects when the process is still running after `ms`. */
  exit(ms: number): Promise<number | NodeJS.Signals>;
}

/** Runs an ES module snippet (TypeScript through tsx) in the repository root. */
function spawnScript(script: string): Child {
  const env: NodeJS.ProcessEnv = { ...process.env, RECURFORMER_QUIET: '1' };
  delete env.NODE_TEST_CONTEXT; // or the child would think it is a test file
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script],
    { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    for (const f of listeners) f();
  });
  const exited = new Promise<number | NodeJS.Signals>((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig!)));
  return {
    child,
    stderr: () => stderr,
    waitFor: (re) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${re} on stderr: ${stderr}`)), 20_000);
      void exited.then((how) => reject(new Error(`exited (${how}) before ${re} on stderr: ${stderr}`)));
      const check = (): void => {
        const m = re.exec(stderr);
        if (!m) return;
        clearTimeout(t);
        listeners.delete(check);
        resolve(m);
      };
      listeners.add(check);
      check();
    }),
    exit: (ms) => {
      let t: NodeJS.Timeout | undefined;
      return Promise.race([exited, new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`still running ${ms} ms later: ${stderr}`)), ms);
      })]).finally(() => clearTimeout(t));
    },
  };
}

const serve = (args: string[]): Child =>
  spawnScript(`import { main } from './src/cli/main.ts'; process.exitCode = await main(${JSON.stringify(args)});`);

const serving = async (c: Child): Promise<string> => (await c.waitFor(/serving \S+ on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;

test('recurformer serve: SIGTERM finishes the running stream, then the process exits 0', async () => {
  const c = serve(['serve', '--port', '0', '--max-concurrent', '2']);
  try {
    const url = await serving(c);
    assert.deepEqual(await (await fetch(`${url}/health`)).json(), { status: 'ok' });
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stories260K', prompt: '', max_tokens: 60, temperature: 0, stream: true }) });
    const reader = res.body!.getReader();
    await reader.read(); // the stream is running
    c.child.kill('SIGTERM');
    let text = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    assert.ok(text.endsWith('data: [DONE]\n\n'), text.slice(-200));
    assert.equal(await c.exit(20_000), 0);
    assert.match(c.stderr(), /SIGTERM, shutting down/);
  } finally {
    c.child.kill('SIGKILL');
  }
});

/** Opens a TCP connection to `url` and resolves once it is up; `closed` resolves when the server closes it. */
async function rawConnection(url: string): Promise<{ socket: Socket; closed: Promise<void> }> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => {}); // a reset is a close too
  await new Promise((resolve) => socket.once('connect', resolve));
  return { socket, closed };
}

test('recurformer serve: SIGTERM exits 0 despite a bare connection and a stalled request, after the stream drains', async () => {
  const c = serve(['serve', '--port', '0', '--grace-ms', '1000']);
  try {
    const url = await serving(c);
    const bare = await rawConnection(url); // connects, never sends a byte
    const stalled = await rawConnection(url); // sends headers and part of the body, then nothing
    stalled.socket.write('POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
      + 'Content-Length: 100\r\n\r\n{"model":');
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stories260K', prompt: '', max_tokens: 400, temperature: 0, stream: true }) });
    const stream = res.text(); // the stream is running; it finishes or is cancelled at the 1 s deadline
    c.child.kill('SIGTERM');
    const text = await stream;
    assert.ok(text.endsWith('data: [DONE]\n\n'), text.slice(-200));
    assert.equal(await c.exit(15_000), 0);
    await Promise.all([bare.closed, stalled.closed]);
  } finally {
    c.child.kill('SIGKILL');
  }
});

/** A child waiting in shutdownOnSignal on a server whose shutdown takes `shutdownMs` (null: forever). */
const signalChild = (shutdownMs: number | null): Child => spawnScript(`
  import { shutdownOnSignal } from './src/server/signals.ts';
  const server = { shutdown: () => new Promise((resolve) => ${shutdownMs === null ? 'void resolve' : `setTimeout(resolve, ${shutdownMs})`}) };
  const alive = setInterval(() => {}, 60_000); // signal handlers alone do not keep a process running
  const done = shutdownOnSignal(server, (line) => process.stderr.write('recurformer: ' + line + '\\n'));
  process.stderr.write('ready\\n');
  await done;
  clearInterval(alive);
  process.stderr.write('done, ' + (process.listenerCount('SIGTERM') + process.listenerCount('SIGINT')) + ' signal listeners left\\n');
`);

test('shutdownOnSignal: one signal drains and resolves, leaving no listeners', async () => {
  const c = signalChild(50);
  try {
    await c.waitFor(/ready/);
    c.child.kill('SIGINT');
    assert.equal(await c.exit(15_000), 0);
    assert.match(c.stderr(), /recurformer: SIGINT, shutting down \(send it again to exit at once\)/);
    assert.match(c.stderr(), /done, 0 signal listeners left/);
  } finally {
    c.child.kill('SIGKILL');
  }
});

for (const [first, second, code] of [['SIGTERM', 'SIGTERM', 143], ['SIGTERM', 'SIGINT', 130]] as const) {
  test(`shutdownOnSignal: ${second} during the drain after ${first} exits at once with ${code}`, async () => {
    const c = signalChild(null);
    try {
      await c.waitFor(/ready/);
      c.child.kill(first);
      await c.waitFor(/shutting down/);
      c.child.kill(second);
      assert.equal(await c.exit(15_000), code);
      assert.match(c.stderr(), new RegExp(`recurformer: ${second} during shutdown, exiting now`));
      assert.doesNotMatch(c.stderr(), /done/);
    } finally {
      c.child.kill('SIGKILL');
    }
  });
}
