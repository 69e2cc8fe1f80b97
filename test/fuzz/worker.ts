/**
 * The fuzz worker: runs one input at a time through the project's real entry points and reports how it ended.
 * It runs in a worker thread (harness.ts) so that a hang can be ended with terminate() and the supervisor survives
 * it. Whether an error is typed (a RecurformerError) is decided here, in the realm that threw it.
 *
 * Besides "no untyped error", each entry point checks what it got back (an `InvariantError`, also untyped): tensor
 * data of the size its shape says, token ids inside the vocabulary, a converted model that loads back as written,
 * nothing left behind by a convert that failed.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parentPort } from 'node:worker_threads';
import { readJsonArg } from '../../src/cli/common.js';
import { convert } from '../../src/convert/apply.js';
import type { ReplacementPlan } from '../../src/convert/plan.js';
import { checkPlanFile, modelShape, parsePlan } from '../../src/convert/validate.js';
import { writeConverted } from '../../src/convert/write.js';
import { findNonFiniteWeights, loadModel, type LoadedModel } from '../../src/io/model-load.js';
import { numel } from '../../src/io/tensor-file.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { loadTokenizer } from '../../src/io/tokenizer-load.js';
import { FormatError, RecurformerError } from '../../src/tensor/errors.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { makeSeeds, STORIES, type SeedKind } from './seeds.js';

export type Request =
  | { kind: 'seeds'; seeds: SeedKind; root: string }
  | { kind: 'model'; path: string; ropeHalf?: boolean; touch: number; checkWeights?: boolean }
  | { kind: 'tokenizer'; path: string }
  | { kind: 'plan'; path: string; base: 'stories' | 'converted'; converted?: string; out: string }
  | { kind: 'checkpoint'; dir: string }
  | { kind: 'selftest'; what: 'hang' | 'untyped' | 'typed' | 'ok'; path: string };

export type Reply =
  | { ok: true; note: string; value?: unknown }
  | { ok: false; typed: boolean; name: string; message: string; stack: string };

/** A loader returned something inconsistent: as bad as an untyped error. */
class InvariantError extends Error {
  override name = 'InvariantError';
}

function invariant(ok: boolean, message: string): void {
  if (!ok) throw new InvariantError(message);
}

/** Texts every tokenizer encodes and decodes: words, whitespace runs, digits, non-Latin script, emoji, lookalikes of special tokens. */
const TEXTS = [
  'Once upon a time, Lily saw a big red ball.',
  '  two  spaces,\ttabs\r\nand\n\nnewlines  ',
  "it's we'll they'd I'M 1234567 3.14159",
  'üñïçødé 日本語のテキスト 🙂👍🏽 ∑∫ Ωμέγα',
  '<s> </s> <|endoftext|> <|begin_of_text|> <unk>',
  `${'a'.repeat(40)}! ${'ab'.repeat(20)}${' '.repeat(30)}x`,
  '',
];

function exercise(tok: Tokenizer): string {
  let n = 0;
  for (const text of TEXTS) {
    for (const bos of [false, true]) {
      const ids = tok.encode(text, { bos });
      for (const id of ids) invariant(Number.isInteger(id) && id >= 0 && id < tok.vocabSize, `encode(${JSON.stringify(text)}) gave id ${id}, vocabulary ${tok.vocabSize}`);
      tok.decode(ids);
      n += ids.length;
    }
  }
  if (tok.vocabSize > 0) {
    tok.decode([0, tok.vocabSize - 1, tok.bosId, tok.eosId]);
    tok.idToPiece(tok.vocabSize - 1);
  }
  return `tokenizer of ${tok.vocabSize} ids (${n} ids for the test texts)`;
}

function touchModel(m: LoadedModel, touch: number): string {
  const list = [...m.tensors.values()];
  invariant(list.length > 0, 'a model without tensors loaded');
  for (const t of list) invariant(t.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `tensor ${t.name} has shape [${t.shape.join(', ')}]`);
  for (const t of [list[0]!, list[list.length - 1]!, list[touch % list.length]!]) {
    const data = t.data;
    invariant(data.length === numel(t.shape), `tensor ${t.name}: ${data.length} values for shape [${t.shape.join(', ')}]`);
  }
  const tok = m.tokenizer ? `; ${exercise(m.tokenizer)}` : '';
  return `${m.format} model, ${list.length} tensors${tok}`;
}

const bases = new Map<string, LoadedModel>();
function base(name: 'stories' | 'converted', converted?: string): LoadedModel {
  let m = bases.get(name);
  if (!m) {
    m = loadModel(name === 'stories' ? STORIES : converted!);
    bases.set(name, m);
  }
  return m;
}

/** `recurformer convert --plan FILE`'s path: read, parse, check against the model, convert, write, load back. */
function planThenConvert(req: Extract<Request, { kind: 'plan' }>): string {
  const m = base(req.base, req.converted);
  const cfg = m.config;
  const plan = parsePlan(readJsonArg(req.path, 'convert', '--plan'), req.path);
  checkPlanFile(plan, cfg, req.path);
  const conv = convert(m, plan, { chunk: 16 });
  const { schema, version, model: _shape, earlier: _stale, ...rest } = plan;
  const earlier = m.recurformer?.layers ?? [];
  const written: ReplacementPlan = { schema, version, model: modelShape(cfg), ...rest, layers: conv.recurformer.layers, ...(earlier.length ? { earlier } : {}) };
  try {
    writeConverted(req.out, conv, written);
  } catch (e) {
    invariant(!existsSync(req.out), `writeConverted failed (${(e as Error).message.split('\n')[0]}) but left ${req.out}`);
    const left = readdirSync(dirname(req.out)).filter((f) => f.startsWith('.'));
    invariant(left.length === 0, `writeConverted failed but left ${left.join(', ')}`);
    throw e;
  }
  const back = loadModel(req.out);
  invariant(isDeepStrictEqual(back.recurformer, conv.recurformer), 'the converted model read back has another recurformer section');
  for (const name of conv.tensors.keys()) invariant(back.tensors.has(name), `the converted model read back lacks ${name}`);
  const again = join(req.out, 'plan.json');
  checkPlanFile(parsePlan(JSON.parse(readFileSync(again, 'utf8')), again), back.config, again);
  rmSync(req.out, { recursive: true, force: true });
  return `converted: ${conv.recurformer.layers.map((l) => `L${l.layer}[${l.groups.join(',')}]`).join(' ')}`;
}

async function handle(req: Request): Promise<{ note: string; value?: unknown }> {
  switch (req.kind) {
    case 'seeds':
      return { note: 'seeds', value: await makeSeeds(req.seeds, req.root) };
    case 'model': {
      const m = loadModel(req.path, req.ropeHalf ? { ropeStyle: 'half' } : {});
      const note = touchModel(m, req.touch);
      if (req.checkWeights) findNonFiniteWeights(req.path);
      return { note };
    }
    case 'tokenizer':
      return { note: exercise(loadTokenizer(req.path)) };
    case 'plan':
      return { note: planThenConvert(req) };
    case 'checkpoint': {
      const { state, tensors } = loadCheckpoint(req.dir);
      for (const kind of ['weights', 'm', 'v'] as const) for (const a of tensors[kind].values()) invariant(a instanceof Float32Array, `${kind} is not a Float32Array`);
      return { note: `checkpoint at step ${state.step}, ${tensors.weights.size} tensors` };
    }
    case 'selftest':
      if (req.what === 'hang') for (;;);
      if (req.what === 'untyped') throw new TypeError('selftest: untyped');
      if (req.what === 'typed') throw new FormatError(req.path, 'selftest: typed');
      return { note: 'ok' };
  }
}

function describe(e: unknown): Reply {
  const err = e instanceof Error ? e : new Error(`non-Error thrown: ${String(e)}`);
  return { ok: false, typed: e instanceof RecurformerError, name: err.name, message: err.message, stack: err.stack ?? '' };
}

parentPort!.on('message', (msg: { id: number; req: Request }) => {
  handle(msg.req).then(
    (r) => parentPort!.postMessage({ id: msg.id, reply: { ok: true, ...r } }),
    (e: unknown) => parentPort!.postMessage({ id: msg.id, reply: describe(e) }),
  );
});
parentPort!.postMessage({ ready: true });
