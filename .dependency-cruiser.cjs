/**
 * dependency-cruiser rules for src/ (run by `npm run lint`; test/package/layers.test.ts checks the rules themselves).
 *
 * The layers, lowest first. A module may import its own layer (no cycles) and any layer below, never one above:
 *
 *   tensor <- model <- io <- (convert, analysis, inference) <- (eval, train) <- (server, cli, report)
 *
 * io sits between model and the rest: it turns files into model configs and weights (so it may import model, and
 * model may not import it), and convert, the trainer and the server read and write files through it.
 * src/index.ts is the public barrel: it re-exports every layer, so it is outside the layers, and nothing in src/
 * imports it.
 */

/** Lowest first; the folders of one entry are one layer. */
const LAYERS = [
  ['tensor'],
  ['model'],
  ['io'],
  ['convert', 'analysis', 'inference'],
  ['eval', 'train'],
  ['server', 'cli', 'report'],
];

const under = (folders) => `^src/(${folders.join('|')})/`;

/** One rule per layer with a layer above it: nothing in the layer imports a module of a higher layer. */
const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer.join('-')}`,
  severity: 'error',
  comment: `${layer.join(', ')} must not import ${LAYERS.slice(i + 1).flat().join(', ')}: the layers go one way, ` +
    `${LAYERS.map((l) => (l.length > 1 ? `(${l.join(', ')})` : l[0])).join(' <- ')}`,
  from: { path: under(layer) },
  to: { path: under(LAYERS.slice(i + 1).flat()) },
}));

const OUTSIDE = `Every module of src/ but index.ts is in a layer's folder (${LAYERS.flat().join(', ')}): ` +
  'put it in one, or add its folder to LAYERS in .dependency-cruiser.cjs.';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Modules that import each other (directly or through others) cannot be understood, tested or loaded apart.',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'src-outside-layers',
      severity: 'error',
      comment: OUTSIDE,
      from: { path: '^src/', pathNot: [under(LAYERS.flat()), '^src/index\\.ts$'] },
      to: {},
    },
    {
      name: 'src-outside-layers',
      severity: 'error',
      comment: OUTSIDE,
      from: { path: '^src/' },
      to: { path: '^src/', pathNot: [under(LAYERS.flat()), '^src/index\\.ts$'] },
    },
    {
      name: 'no-barrel-inside',
      severity: 'error',
      comment: 'src/index.ts is the public barrel over every layer; importing it from src/ would go around the layers.',
      from: { path: '^src/' },
      to: { path: '^src/index\\.ts$' },
    },
    {
      name: 'tensor-reference-is-private',
      severity: 'error',
      comment: "The reference backend (src/tensor/reference/) is the tensor engine's own; outside src/tensor/, import what it " +
        'offers through src/tensor/index.ts.',
      from: { path: '^src/', pathNot: '^src/tensor/' },
      to: { path: '^src/tensor/reference/' },
    },
    {
      name: 'src-not-to-tests',
      severity: 'error',
      comment: 'The shipped code (src/) must not import tests, benchmarks or scripts, which the package does not ship.',
      from: { path: '^src/' },
      to: { path: '^(test|bench|scripts)/' },
    },
    {
      name: 'not-to-dev-dep',
      severity: 'error',
      comment: "src/ ships: a package it imports at run time must be in package.json's dependencies, not devDependencies.",
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'], pathNot: 'node_modules/@types/' },
    },
    {
      name: 'no-non-package-json',
      severity: 'error',
      comment: 'An npm package that package.json does not declare: it may be missing, or some other version, where the package is installed.',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to no file.',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-orphans',
      severity: 'error',
      comment: 'A module nothing imports and that imports nothing: dead code, or an entry point to name here.',
      from: { orphan: true, pathNot: ['^src/index\\.ts$', '(^|/)\\.[^/]+\\.(js|cjs|mjs|ts|json)$', '\\.d\\.(c|m)?ts$'] },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: ['node_modules'] },
    // type-only imports count: a type from a higher layer is as much a dependency on it as a value
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.d.ts', '.json'],
    },
    skipAnalysisNotInRules: true,
    reporterOptions: {
      archi: { collapsePattern: '^src/[^/]+' },
    },
  },
};
