/**
 * Every package a user installs with recurformer (the tree reachable from `dependencies`, resolved as Node does)
 * must accept the Node versions our engines field promises. A dependency that moved on (light-my-request 6.8 pulls
 * cookie 2, engines node >=22) breaks Node 20 users; npm only warns (EBADENGINE).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url)).replace(/[\\/]$/, '');

interface Manifest {
  name: string;
  version: string;
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

interface Semver {
  satisfies(v: string, range: string): boolean;
  minVersion(range: string): { major: number } | null;
  validRange(range: string): string | null;
}

const readManifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;

/** Where `name` resolves from a package at `dir`: its own node_modules, then each enclosing one (Node's lookup). */
function resolveDep(dir: string, name: string): string | null {
  for (let d = dir; d.startsWith(repo); d = dirname(d)) {
    const p = join(d, 'node_modules', name);
    if (existsSync(join(p, 'package.json'))) return p;
    if (d === repo) break;
  }
  return null;
}

/** The production tree: package folder -> manifest. A required dependency that is missing is reported. */
function productionTree(): { pkgs: Map<string, Manifest>; missing: string[] } {
  const pkgs = new Map<string, Manifest>(), missing: string[] = [];
  const queue: [string, Manifest][] = [[repo, readManifest(repo)]];
  while (queue.length) {
    const [dir, m] = queue.shift()!;
    const optional = new Set([...Object.keys(m.optionalDependencies ?? {}),
      ...Object.entries(m.peerDependenciesMeta ?? {}).filter(([, v]) => v.optional).map(([k]) => k)]);
    const names = new Set([...Object.keys(m.dependencies ?? {}), ...Object.keys(m.optionalDependencies ?? {}), ...Object.keys(m.peerDependencies ?? {})]);
    for (const name of names) {
      const at = resolveDep(dir, name);
      if (at === null) {
        // peers of packages outside our use (and optional ones) may be absent; a plain dependency may not
        if (!optional.has(name) && !(m.peerDependencies && name in m.peerDependencies)) missing.push(`${m.name} -> ${name}`);
        continue;
      }
      if (pkgs.has(at)) continue;
      const dm = readManifest(at);
      pkgs.set(at, dm);
      queue.push([at, dm]);
    }
  }
  return { pkgs, missing };
}

test('every production dependency accepts the Node versions in our engines field', () => {
  const semver = createRequire(join(repo, 'package.json'))('semver') as Semver;
  const ours = readManifest(repo).engines?.node;
  assert.ok(ours && semver.validRange(ours), 'package.json has a valid engines.node');
  // the first release of every major our range admits, up to the Node running the test: catches "^20.17 || >=22.9"
  // (excludes 20.0-20.16) as well as ">=22" (excludes 20 entirely)
  const first = semver.minVersion(ours)!.major, current = Number(process.versions.node.split('.')[0]);
  const probes = [semver.minVersion(ours)!.toString()];
  for (let major = first + 1; major <= Math.max(first, current); major++) if (semver.satisfies(`${major}.0.0`, ours)) probes.push(`${major}.0.0`);
  const { pkgs, missing } = productionTree();
  assert.deepEqual(missing, [], 'dependencies missing from node_modules (run npm install)');
  assert.ok(pkgs.size > 10, `walked ${pkgs.size} packages`);
  const bad: string[] = [];
  for (const [dir, m] of pkgs) {
    const range = m.engines?.node;
    if (!range) continue;
    const excluded = probes.filter((v) => !semver.satisfies(v, range));
    if (excluded.length) bad.push(`${m.name}@${m.version} (${dir.slice(repo.length)}) engines.node "${range}" excludes ${excluded.join(', ')}`);
  }
  assert.deepEqual(bad, [], `our engines.node is "${ours}"`);
});
