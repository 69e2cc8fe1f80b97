/** Runs the CLI in-process and captures stdout, stderr and the exit code. */
import { main } from '../../src/cli/main.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(args: string[]): Promise<CliResult> {
  // The test runner writes its report of earlier tests to this process's stdout asynchronously; let that land
  // before stdout is captured, or it ends up in this command's output (the commands that render charts await).
  await new Promise((resolve) => setTimeout(resolve, 20));
  let stdout = '', stderr = '';
  const ow = process.stdout.write.bind(process.stdout), ew = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string | Uint8Array) => {
    stdout += typeof s === 'string' ? s : Buffer.from(s).toString();
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => {
    stderr += typeof s === 'string' ? s : Buffer.from(s).toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

/**
 * The body of an analysis.json for stories260K (5 layers x 4 KV groups) to pass to `convert --analysis`: group
 * (l, g) has recency score (l * 4 + g) / 20 at window 16 (waiver-adjusted 0.5), so a budget replaces the later
 * layers' groups first.
 */
export function fakeAnalysis(): unknown {
  const groups = [];
  for (let l = 0; l < 5; l++) {
    for (let g = 0; g < 4; g++) groups.push({ layer: l, kvGroup: g, groupScore: { rr: { '16': (l * 4 + g) / 20 }, rrw: { '16': 0.5 } } });
  }
  return { schema: 'recurformer.analysis', version: 1, groups, heads: [] };
}
