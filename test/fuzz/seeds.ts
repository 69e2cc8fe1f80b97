/**
 * Valid seed files for the fuzz targets, made fresh in a temp folder at test start (run in the fuzz worker, which
 * has the project's modules loaded): the bundled models and fixtures, variants of them our writers produce (GGUF
 * in F32/F16 and with Q8_0/Q4_0/Q4_1 tensors, two safetensors shards with an index, a llama2.c file with its own
 * classifier, tokenizer.json files in the Llama 3, SmolLM2 and Metaspace layouts), a model and plan.json written
 * by convert, and a checkpoint.bin written by a two-step `train` run. Large weights (demo-llama, demo-gpt2) are
 * copied sparse: their headers and the right size, zeros for data (loading reads headers only).
 */
import { closeSync, copyFileSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { convert } from '../../src/convert/apply.js';
import { planFromAnalysis, type AnalysisLike, type ReplacementPlan } from '../../src/convert/plan.js';
import { modelShape } from '../../src/convert/validate.js';
import { writeConverted } from '../../src/convert/write.js';
import { loadModel } from '../../src/io/model-load.js';
import { writeGgufModel } from '../../src/io/model-save.js';
import { serializeSafetensors } from '../../src/io/safetensors.js';
import { LLAMA3_PATTERN } from '../../src/io/tokenizer-bytelevel.js';
import { runTraining } from '../../src/train/loop.js';
import { buildCheckpoint, checkpointParts, ggufLayout } from './formats.js';

const repo = (p: string): string => new URL(`../../${p}`, import.meta.url).pathname;
export const STORIES = repo('models/stories260K');
const DEMO_LLAMA = repo('models/demo-llama');
const DEMO_GPT2 = repo('models/demo-gpt2');
const FIXTURES = repo('test/fixtures');
const MODEL_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

/** A model or tokenizer folder; `weights` are its safetensors files (and index), `tokenizer` its tokenizer.json. */
export interface FolderSeed {
  name: string;
  dir: string;
  files: string[];
}

export interface FileSeed {
  name: string;
  path: string;
  /** How the target loads it. */
  kind: 'model' | 'tokenizer';
}

export interface PlanSeed {
  name: string;
  path: string;
  /** The model the plan is for: stories260K or its converted copy. */
  base: 'stories' | 'converted';
}

export type SeedKind = 'folders' | 'gguf' | 'llama2c' | 'tokenizers' | 'plans' | 'checkpoint';

export interface SeedSet {
  folders?: FolderSeed[];
  files?: FileSeed[];
  /** llama2.c: a folder with the checkpoint and its tok512.bin. */
  llama2c?: { name: string; dir: string; bin: string; tok: string }[];
  plans?: PlanSeed[];
  converted?: string;
  checkpoint?: string;
}

function copyInto(dir: string, from: string, files: readonly string[]): string[] {
  mkdirSync(dir, { recursive: true });
  for (const f of files) copyFileSync(join(from, f), join(dir, f));
  return [...files];
}

/** A safetensors file with its header and the right size, but no data written (a sparse file reading as zeros). */
function sparseSafetensors(from: string, to: string): void {
  const fd = openSync(from, 'r');
  const len = Buffer.alloc(8);
  readSync(fd, len, 0, 8, 0);
  const head = Buffer.alloc(8 + Number(len.readBigUInt64LE(0)));
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  const out = openSync(to, 'w');
  writeSync(out, head);
  ftruncateSync(out, statSync(from).size);
  closeSync(out);
}

function demoFolder(root: string, name: string, from: string): FolderSeed {
  const dir = join(root, name);
  const files = copyInto(dir, from, MODEL_FILES.filter((f) => f !== 'model.safetensors'));
  sparseSafetensors(join(from, 'model.safetensors'), join(dir, 'model.safetensors'));
  return { name, dir, files: [...files, 'model.safetensors'] };
}

/** stories260K's tensors in two shards and an index, as sharded Hugging Face checkpoints are. */
function shardedFolder(root: string): FolderSeed {
  const dir = join(root, 'sharded');
  const files = copyInto(dir, STORIES, MODEL_FILES.filter((f) => f !== 'model.safetensors'));
  const tensors = [...loadModel(STORIES).tensors.values()].map((t) => ({ ...t }));
  const half = Math.ceil(tensors.length / 2);
  const shards = [tensors.slice(0, half), tensors.slice(half)];
  const weightMap: Record<string, string> = {};
  shards.forEach((ts, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`;
    writeFileSync(join(dir, name), Buffer.concat(serializeSafetensors(ts, { format: 'pt' })));
    for (const t of ts) weightMap[t.name] = name;
    files.push(name);
  });
  const total = tensors.reduce((s, t) => s + t.data.byteLength, 0);
  writeFileSync(join(dir, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
  files.push('model.safetensors.index.json');
  return { name: 'sharded', dir, files };
}

/** Group scores (l * G + g) / (L * G), so a budget replaces the later layers' groups. */
function fakeAnalysis(nLayers: number, nKv: number, retrieval = false): AnalysisLike {
  const groups = [];
  const harm = [];
  for (let l = 0; l < nLayers; l++) {
    for (let g = 0; g < nKv; g++) {
      const v = (l * nKv + g) / (nLayers * nKv);
      groups.push({ layer: l, kvGroup: g, groupScore: { rr: { '16': v, '64': v / 2 }, rrw: { '16': v, '64': null } } });
      harm.push({ layer: l, kvGroup: g, harm: ((l + g) % 3) * 0.1 });
    }
  }
  return retrieval ? { groups, retrieval: { groups: harm } } : { groups };
}

function writeJson(path: string, v: unknown): void {
  writeFileSync(path, `${JSON.stringify(v, null, 2)}\n`);
}

let convertedDir: string | null = null;

/** stories260K converted (budget 0.25) by writeConverted: the folder, with the plan.json convert wrote. */
function convertedFolder(root: string): string {
  if (convertedDir) return convertedDir;
  const base = loadModel(STORIES);
  const cfg = base.config;
  const plan = planFromAnalysis(fakeAnalysis(cfg.nLayers, cfg.nKvHeads), cfg.nLayers, cfg.nKvHeads, { budget: 0.25 });
  const conv = convert(base, plan, { chunk: 16 });
  const written: ReplacementPlan = { ...plan, model: modelShape(cfg), layers: conv.recurformer.layers };
  convertedDir = join(root, 'converted');
  writeConverted(convertedDir, conv, written);
  return convertedDir;
}

/** A GGUF file with its 2-D tensors (inner dim a multiple of 32) re-stored as Q8_0, Q4_0 and Q4_1 blocks. */
function quantizedGguf(f32: Buffer): Buffer {
  const { headerEnd: dataStart, infoStart } = ggufLayout(f32);
  // re-read the tensor infos (name, dims, type, offset) and write them back with new types and offsets
  const infos: { name: string; ne: bigint[]; type: number; offset: number }[] = [];
  let p = infoStart;
  const nTensors = Number(f32.readBigUInt64LE(8));
  for (let i = 0; i < nTensors; i++) {
    const n = Number(f32.readBigUInt64LE(p));
    const name = f32.toString('utf8', p + 8, p + 8 + n);
    p += 8 + n;
    const nDims = f32.readUInt32LE(p);
    p += 4;
    const ne: bigint[] = [];
    for (let d = 0; d < nDims; d++, p += 8) ne.push(f32.readBigUInt64LE(p));
    const type = f32.readUInt32LE(p);
    const offset = Number(f32.readBigUInt64LE(p + 4));
    p += 12;
    infos.push({ name, ne, type, offset });
  }
  const QUANTS = [{ type: 8, bytes: 34 }, { type: 2, bytes: 18 }, { type: 3, bytes: 20 }];
  const parts: Buffer[] = [];
  const data: Buffer[] = [];
  let offset = 0;
  let k = 0;
  let lcg = 12345;
  for (const t of infos) {
    const n = t.ne.reduce((a, b) => a * Number(b), 1);
    const q = t.ne.length === 2 && Number(t.ne[0]) % 32 === 0 && t.type === 0 ? QUANTS[k++ % QUANTS.length]! : null;
    let bytes: Buffer;
    if (q) {
      bytes = Buffer.alloc((n / 32) * q.bytes);
      for (let o = 0; o < bytes.length; o += q.bytes) {
        bytes.writeUInt16LE(0x2c00, o); // d = 0.0625
        if (q.type === 3) bytes.writeUInt16LE(0xac00, o + 2); // m = -0.0625
        for (let j = o + (q.type === 3 ? 4 : 2); j < o + q.bytes; j++) {
          lcg = (Math.imul(lcg, 1103515245) + 12345) >>> 0;
          bytes[j] = lcg >>> 24;
        }
      }
    } else {
      bytes = f32.subarray(dataStart + t.offset, dataStart + t.offset + n * (t.type === 0 ? 4 : 2));
    }
    const name = Buffer.from(t.name, 'utf8');
    const info = Buffer.alloc(8 + name.length + 4 + 8 * t.ne.length + 12);
    let w = info.writeBigUInt64LE(BigInt(name.length), 0);
    w += name.copy(info, w);
    w = info.writeUInt32LE(t.ne.length, w);
    for (const d of t.ne) w = info.writeBigUInt64LE(d, w);
    w = info.writeUInt32LE(q ? q.type : t.type, w);
    info.writeBigUInt64LE(BigInt(offset), w);
    parts.push(info);
    const pad = (32 - (bytes.length % 32)) % 32;
    data.push(bytes, Buffer.alloc(pad));
    offset += bytes.length + pad;
  }
  const head = Buffer.concat([f32.subarray(0, infoStart), ...parts]);
  return Buffer.concat([head, Buffer.alloc((32 - (head.length % 32)) % 32), ...data]);
}

/** Make the seeds one target needs under `root`. */
export async function makeSeeds(kind: SeedKind, root: string): Promise<SeedSet> {
  mkdirSync(root, { recursive: true });
  if (kind === 'folders') {
    const stories: FolderSeed = { name: 'stories260K', dir: join(root, 'stories260K'), files: copyInto(join(root, 'stories260K'), STORIES, MODEL_FILES) };
    const conv = convertedFolder(root);
    return {
      folders: [stories, demoFolder(root, 'demo-llama', DEMO_LLAMA), demoFolder(root, 'demo-gpt2', DEMO_GPT2), shardedFolder(root),
        { name: 'converted', dir: conv, files: [...MODEL_FILES, 'plan.json'] }],
    };
  }
  if (kind === 'gguf') {
    const m = loadModel(STORIES);
    const f32 = join(root, 'stories260K-f32.gguf');
    const f16 = join(root, 'stories260K-f16.gguf');
    const q = join(root, 'stories260K-q.gguf');
    writeGgufModel(f32, m, 'F32');
    writeGgufModel(f16, m, 'F16');
    writeFileSync(q, quantizedGguf(readFileSync(f32)));
    const vocab = join(root, 'ggml-vocab-gpt-2.gguf');
    copyFileSync(join(FIXTURES, 'gguf-vocab-gpt2', 'ggml-vocab-gpt-2.gguf'), vocab);
    return {
      files: [{ name: 'stories260K-f32.gguf', path: f32, kind: 'model' }, { name: 'stories260K-f16.gguf', path: f16, kind: 'model' },
        { name: 'stories260K-q.gguf', path: q, kind: 'model' }, { name: 'ggml-vocab-gpt-2.gguf', path: vocab, kind: 'tokenizer' }],
    };
  }
  if (kind === 'llama2c') {
    const a = join(root, 'shared');
    copyInto(a, join(FIXTURES, 'stories260K'), ['stories260K.bin', 'tok512.bin']);
    // the same model with its own classifier: vocab_size negative in the header, the classifier after the tables
    const b = join(root, 'separate');
    mkdirSync(b);
    const bin = readFileSync(join(a, 'stories260K.bin'));
    const head = Buffer.from(bin.subarray(0, 28));
    const vocab = head.readInt32LE(20);
    const dim = head.readInt32LE(0);
    head.writeInt32LE(-vocab, 20);
    writeFileSync(join(b, 'stories260K.bin'), Buffer.concat([head, bin.subarray(28), bin.subarray(28, 28 + vocab * dim * 4)]));
    copyFileSync(join(a, 'tok512.bin'), join(b, 'tok512.bin'));
    return {
      llama2c: [{ name: 'stories260K.bin', dir: a, bin: 'stories260K.bin', tok: 'tok512.bin' },
        { name: 'stories260K-separate-classifier.bin', dir: b, bin: 'stories260K.bin', tok: 'tok512.bin' }],
    };
  }
  if (kind === 'tokenizers') {
    const stories: FolderSeed = { name: 'stories260K', dir: join(root, 'stories260K'), files: copyInto(join(root, 'stories260K'), STORIES, MODEL_FILES) };
    const demo = demoFolder(root, 'demo-llama', DEMO_LLAMA);
    const variant = (name: string, from: string, edit: (tj: Record<string, unknown>) => void): FolderSeed => {
      const dir = join(root, name);
      mkdirSync(dir);
      const tj = JSON.parse(readFileSync(join(from, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
      edit(tj);
      writeJson(join(dir, 'tokenizer.json'), tj);
      copyFileSync(join(from, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
      return { name, dir, files: ['tokenizer.json', 'tokenizer_config.json'] };
    };
    const split = (pattern: string) => ({ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false });
    const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
    return {
      folders: [stories, demo,
        variant('llama3-style', DEMO_LLAMA, (tj) => {
          tj['pre_tokenizer'] = { type: 'Sequence', pretokenizers: [split(LLAMA3_PATTERN), byteLevel(false)] };
          tj['normalizer'] = { type: 'NFC' };
          (tj['model'] as Record<string, unknown>)['ignore_merges'] = true;
        }),
        variant('smollm-style', DEMO_LLAMA, (tj) => {
          tj['pre_tokenizer'] = { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)] };
        }),
        variant('whitespace-punctuation', DEMO_LLAMA, (tj) => {
          tj['pre_tokenizer'] = { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Punctuation', behavior: 'Contiguous' },
            { type: 'Split', pattern: { String: 'the' }, behavior: 'MergedWithNext', invert: false }, byteLevel(false)] };
        }),
        variant('metaspace', STORIES, (tj) => {
          tj['normalizer'] = null;
          tj['pre_tokenizer'] = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: false };
        })],
    };
  }
  if (kind === 'plans') {
    const conv = convertedFolder(root);
    const base = loadModel(STORIES);
    const cfg = base.config;
    const threshold = planFromAnalysis(fakeAnalysis(cfg.nLayers, cfg.nKvHeads, true), cfg.nLayers, cfg.nKvHeads,
      { threshold: 0.6, score: 'rrw', minKeepPerLayer: 1, neverLayers: [0] });
    writeJson(join(root, 'plan-threshold.json'), { ...threshold, model: modelShape(cfg) });
    // a plan adding groups to the converted model, as convert writes it: every recurrent group, the earlier ones apart
    const again = loadModel(conv);
    const more: ReplacementPlan = { ...threshold, layers: [{ layer: 1, groups: [0, 2] }, { layer: 2, groups: [1] }] };
    const c2 = convert(again, more, { chunk: 16 });
    writeJson(join(root, 'plan-earlier.json'), { ...more, model: modelShape(cfg), layers: c2.recurformer.layers, earlier: again.recurformer!.layers });
    return {
      converted: conv,
      plans: [{ name: 'plan.json (convert)', path: join(conv, 'plan.json'), base: 'stories' },
        { name: 'plan-threshold.json', path: join(root, 'plan-threshold.json'), base: 'stories' },
        { name: 'plan-earlier.json', path: join(root, 'plan-earlier.json'), base: 'converted' }],
    };
  }
  // checkpoint: a two-step pretraining run of stories260K's norms, its paths and clock then made fixed, so that the
  // seed file (and so every mutation of it) is the same from run to run
  const out = join(root, 'train');
  const data = join(root, 'stories.txt');
  writeFileSync(data, readFileSync(repo('data/tinystories-valid-excerpt/tinystories_val.txt'), 'utf8').slice(0, 6000));
  await runTraining({
    stage: 'pretrain', model: STORIES, data, out, cacheDir: join(root, 'cache'), steps: 2, batch: 1, seq: 16, accum: 1,
    trainable: 'recurrent+norms', evalEvery: 0, evalBatches: 1, saveEvery: 2, warmup: 0, seed: 1,
  });
  const path = join(out, 'checkpoint.bin');
  const b = readFileSync(path);
  const { header, blobs } = checkpointParts(b);
  const h = JSON.parse(header) as { state: { config: Record<string, unknown>; elapsedMs: number } };
  for (const k of ['model', 'teacher', 'init', 'tokenizer', 'data', 'cacheDir', 'out']) {
    if (typeof h.state.config[k] === 'string') h.state.config[k] = `/fuzz-seed/${k}`;
  }
  h.state.elapsedMs = 0;
  writeFileSync(path, buildCheckpoint(b.subarray(0, 8), JSON.stringify(h), blobs));
  return { checkpoint: path };
}
