/**
 * The layer rules of .dependency-cruiser.cjs (run on src/ by `npm run lint`), checked on small trees written to a
 * temporary folder with src/'s folder names: every import down the layers (or within one) passes, every import up
 * them is reported, and so are a cycle, the barrel imported from inside, a reach into the reference backend and a
 * folder outside the layers. The layers are the issue's:
 *
 *   tensor <- model <- io <- (convert, analysis, inference) <- (eval, train) <- (server, cli, report)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const CONFIG = join(repo, '.dependency-cruiser.cjs');
const DEPCRUISE = join(repo, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

/** Lowest first; the folders of one entry are one layer. */
const LAYERS = [['tensor'], ['model'], ['io'], ['convert', 'analysis', 'inference'], ['eval', 'train'], ['server', 'cli', 'report']];
const FOLDERS = LAYERS.flat();
const layerOf = (folder: string): number => LAYERS.findIndex((l) => l.includes(folder));

type Tree = Record<string, string>;

/** `import` lines from `file` to each target (paths under src/), with the .js specifiers NodeNext wants. */
function imports(file: string, targets: readonly string[], kind: 'value' | 'type' = 'value'): string {
  return targets.map((t, i) => {
    let rel = join(...dirname(file).split('/').map(() => '..'), t).replace(/\\/g, '/').replace(/\.ts$/, '.js');
    rel = rel.startsWith('.') ? rel : `./${rel}`;
    return kind === 'type' ? `import type { V as T${i} } from '${rel}';` : `import { v as v${i} } from '${rel}';\nvoid v${i};`;
  }).join('\n') + '\nexport const v = 1;\nexport type V = number;\n';
}

/**
 * A tree that keeps every rule: each folder has base.ts (imports nothing) and uses.ts, which imports the base.ts of
 * every folder below its layer and of the other folders of its own layer; tensor/index.ts re-exports a reference
 * kernel, and eval goes through it; src/index.ts, the barrel, imports every uses.ts.
 */
function cleanTree(): Tree {
  const tree: Tree = {};
  for (const f of FOLDERS) {
    tree[`src/${f}/base.ts`] = imports(`src/${f}/base.ts`, []);
    const lower = FOLDERS.filter((g) => layerOf(g) < layerOf(f) || (layerOf(g) === layerOf(f) && g !== f));
    tree[`src/${f}/uses.ts`] = imports(`src/${f}/uses.ts`, lower.map((g) => `src/${g}/base.ts`));
  }
  tree['src/tensor/reference/rows.ts'] = imports('src/tensor/reference/rows.ts', []);
  tree['src/tensor/index.ts'] = imports('src/tensor/index.ts', ['src/tensor/reference/rows.ts']);
  tree['src/eval/score.ts'] = imports('src/eval/score.ts', ['src/tensor/index.ts']);
  tree['src/index.ts'] = imports('src/index.ts', [...FOLDERS.map((f) => `src/${f}/uses.ts`), 'src/eval/score.ts']);
  return tree;
}

interface Violation {
  rule: string;
  from: string;
  to: string;
}

/** Writes `tree` to a temporary folder and hands it to `use`. */
function inTempTree<R>(tree: Tree, use: (root: string) => R): R {
  const root = mkdtempSync(join(tmpdir(), 'recurformer-layers-'));
  try {
    const files: Tree = {
      ...tree,
      'package.json': JSON.stringify({ name: 'layers-fixture', type: 'module', private: true }),
      'tsconfig.json': JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true }, include: ['src/**/*.ts'] }),
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return use(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** dependency-cruiser on src/ of `root` with the project's config, as `npm run lint` runs it. */
const depcruise = (root: string, outputType: 'json' | 'err') =>
  spawnSync(process.execPath, [DEPCRUISE, 'src', '--config', CONFIG, '--output-type', outputType], { cwd: root, encoding: 'utf8' });

/** The violations dependency-cruiser reports on `tree`. */
function cruise(tree: Tree): Violation[] {
  return inTempTree(tree, (root) => {
    const r = depcruise(root, 'json');
    assert.ok(r.stdout.startsWith('{'), `dependency-cruiser failed (status ${r.status}): ${r.stderr}${r.stdout}`);
    const out = JSON.parse(r.stdout) as { summary: { violations: { rule: { name: string }; from: string; to: string }[]; totalCruised: number } };
    assert.equal(out.summary.totalCruised, Object.keys(tree).length, 'every fixture file is cruised');
    return out.summary.violations.map((v) => ({ rule: v.rule.name, from: v.from, to: v.to }));
  });
}

const key = (v: Violation): string => `${v.rule}: ${v.from} -> ${v.to}`;
const sorted = (vs: readonly Violation[]): string[] => vs.map(key).sort();

test('a tree whose imports go down the layers (or across one) passes every rule', () => {
  assert.deepEqual(sorted(cruise(cleanTree())), []);
});

test('an upward import is reported: src/tensor/x.ts importing src/cli/y.ts', () => {
  const tree = cleanTree();
  tree['src/cli/y.ts'] = imports('src/cli/y.ts', []);
  tree['src/tensor/x.ts'] = imports('src/tensor/x.ts', ['src/cli/y.ts']);
  tree['src/tensor/uses-x.ts'] = imports('src/tensor/uses-x.ts', ['src/tensor/x.ts']);
  assert.deepEqual(sorted(cruise(tree)), ['layer-tensor: src/tensor/x.ts -> src/cli/y.ts']);
  // the lint script's reporter: the exit status counts the errors, so `npm run lint` fails
  const r = inTempTree(tree, (root) => depcruise(root, 'err'));
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /error layer-tensor: src\/tensor\/x\.ts → src\/cli\/y\.ts/);
});

test('every upward pair of folders is reported, type-only imports included', () => {
  const tree = cleanTree(), expected: string[] = [];
  for (const low of FOLDERS) {
    for (const high of FOLDERS.filter((h) => layerOf(h) > layerOf(low))) {
      const file = `src/${low}/up-to-${high}.ts`;
      // half of them type-only: a type from a higher layer ties the lower one to it as much as a value does
      tree[file] = imports(file, [`src/${high}/base.ts`], expected.length % 2 ? 'type' : 'value');
      expected.push(`layer-${LAYERS[layerOf(low)]!.join('-')}: ${file} -> src/${high}/base.ts`);
    }
  }
  assert.equal(expected.length, 48);
  assert.deepEqual(sorted(cruise(tree)), expected.sort());
});

test('a cycle is reported, within a folder and across layers', () => {
  const tree = cleanTree();
  tree['src/io/a.ts'] = imports('src/io/a.ts', ['src/io/b.ts']);
  tree['src/io/b.ts'] = imports('src/io/b.ts', ['src/io/a.ts']);
  const cycles = cruise(tree).filter((v) => v.rule === 'no-circular');
  assert.deepEqual(cycles.map((v) => [v.from, v.to].sort()), [['src/io/a.ts', 'src/io/b.ts']]);

  // model <-> inference is a cycle and an upward import at once: both are reported
  const tree2 = cleanTree();
  tree2['src/inference/mem.ts'] = imports('src/inference/mem.ts', ['src/model/lm.ts']);
  tree2['src/model/lm.ts'] = imports('src/model/lm.ts', ['src/inference/mem.ts']);
  const rules = new Set(cruise(tree2).map((v) => v.rule));
  assert.deepEqual([...rules].sort(), ['layer-model', 'no-circular']);
});

test('the barrel, the reference backend and folders outside the layers are guarded too', () => {
  const tree = cleanTree();
  tree['src/model/barrel-user.ts'] = imports('src/model/barrel-user.ts', ['src/index.ts']);
  tree['src/analysis/lse.ts'] = imports('src/analysis/lse.ts', ['src/tensor/reference/rows.ts']);
  tree['src/misc/helper.ts'] = imports('src/misc/helper.ts', ['src/tensor/base.ts']);
  tree['src/util.ts'] = imports('src/util.ts', []);
  tree['src/model/util-user.ts'] = imports('src/model/util-user.ts', ['src/util.ts']);
  tree['src/server/dead.ts'] = 'export const unused = 1;\n';
  assert.deepEqual(sorted(cruise(tree)), [
    'no-barrel-inside: src/model/barrel-user.ts -> src/index.ts',
    'no-orphans: src/server/dead.ts -> src/server/dead.ts',
    'src-outside-layers: src/misc/helper.ts -> src/tensor/base.ts',
    'src-outside-layers: src/model/util-user.ts -> src/util.ts',
    'tensor-reference-is-private: src/analysis/lse.ts -> src/tensor/reference/rows.ts',
  ]);
});
