/**
 * The `recurformer` section of a converted model's config.json: which KV groups of which layers are recurrent and
 * the recurrent heads' hyperparameters. With it, the recurrent tensors (named `<layer prefix>.recurrent.<param>`)
 * are part of the checkpoint. Documented in docs/convert.md.
 */
import type { ModelConfig } from './config.js';
import { channels, headsOfGroups, layerDims, REPLACED_KINDS, type RecurformerSpec } from './layout.js';

export { headsOfGroups, layerDims, type RecurformerSpec };
import { FormatError } from '../tensor/errors.js';

export function layerPrefix(cfg: ModelConfig, l: number): string {
  return cfg.arch === 'gpt2' ? `transformer.h.${l}` : `model.layers.${l}`;
}

/**
 * Rows [start, end) that group number i of a layer's `nGroups` (in order) owns in the layer's recurrent tensor
 * `param` (rows = the first axis): conv_w / conv_b have one range in each of the x, B and C channel blocks; norm_w
 * is shared by all heads and owns none. Lets convert add groups to a converted layer and keep the earlier ones.
 */
export function groupRows(cfg: ModelConfig, spec: RecurformerSpec, param: string, i: number, nGroups: number): [number, number][] {
  const nRep = cfg.nHeads / cfg.nKvHeads, H = nGroups * nRep, { P, N } = spec;
  const perHead = (width: number, offset = 0): [number, number] => [offset + i * nRep * width, offset + (i + 1) * nRep * width];
  switch (param) {
    case 'wx':
    case 'wz': return [perHead(P)];
    case 'wb': return [[i * N, (i + 1) * N]];
    case 'wc': return [perHead(N)];
    case 'conv_w':
    case 'conv_b': return [perHead(P), [H * P + i * N, H * P + (i + 1) * N], perHead(N, H * P + nGroups * N)];
    case 'norm_w': return [];
    default: return [perHead(1)]; // wdt, bdt, a_log, d: one row per head
  }
}

/** Expected recurrent tensors (HF-style names) and shapes for a spec. */
export function recurrentTensorShapes(cfg: ModelConfig, spec: RecurformerSpec): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const D = cfg.dModel;
  for (const { layer, groups } of spec.layers) {
    const d = layerDims(cfg, spec, groups);
    const C = channels(d);
    const p = `${layerPrefix(cfg, layer)}.recurrent`;
    out.set(`${p}.wx`, [d.nHeads * d.P, D]);
    out.set(`${p}.wb`, [d.nGroups * d.N, D]);
    out.set(`${p}.wc`, [d.nHeads * d.N, D]);
    out.set(`${p}.conv_w`, [C, d.convK]);
    out.set(`${p}.conv_b`, [C]);
    out.set(`${p}.wdt`, [d.nHeads, D]);
    out.set(`${p}.bdt`, [d.nHeads]);
    out.set(`${p}.a_log`, [d.nHeads]);
    out.set(`${p}.d`, [d.nHeads]);
    if (spec.gate) out.set(`${p}.wz`, [d.nHeads * d.P, D]);
    if (spec.norm) out.set(`${p}.norm_w`, [d.P]);
    if (spec.kind === 'recurrent+window') out.set(`${p}.mix`, [d.nHeads]);
  }
  return out;
}

function posInt(v: unknown, key: string, file: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new FormatError(file, `recurformer.${key} = ${JSON.stringify(v)} must be a positive integer`, 'fix the recurformer section of config.json');
  }
  return v;
}

/** Validates the section read from config.json. */
export function parseSpec(json: unknown, cfg: ModelConfig, file: string): RecurformerSpec {
  if (typeof json !== 'object' || json === null) throw new FormatError(file, 'recurformer section is not an object', 'fix config.json');
  const j = json as Record<string, unknown>;
  if (j.version !== 1) throw new FormatError(file, `recurformer.version ${JSON.stringify(j.version)} is not supported`, 'this recurformer reads version 1');
  const layersRaw = j.layers;
  if (!Array.isArray(layersRaw)) throw new FormatError(file, 'recurformer.layers is not a list', 'fix config.json');
  const layers = layersRaw.map((e: unknown, i) => {
    const o = e as { layer?: unknown; groups?: unknown };
    const layer = o?.layer;
    if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 0 || layer >= cfg.nLayers) {
      throw new FormatError(file, `recurformer.layers[${i}].layer = ${JSON.stringify(layer)} is not a layer of this model (0..${cfg.nLayers - 1})`, 'fix config.json');
    }
    if (!Array.isArray(o.groups) || !o.groups.every((g) => Number.isInteger(g) && g >= 0 && g < cfg.nKvHeads)) {
      throw new FormatError(file, `recurformer.layers[${i}].groups must list KV groups in 0..${cfg.nKvHeads - 1}`, 'fix config.json');
    }
    return { layer, groups: [...new Set(o.groups as number[])].sort((a, b) => a - b) };
  });
  return {
    version: 1, P: posInt(j.P, 'P', file), N: posInt(j.N, 'N', file), convK: posInt(j.convK, 'convK', file),
    gate: j.gate === true, norm: j.norm === true, chunk: posInt(j.chunk, 'chunk', file), ...parseKind(j, file), layers,
  };
}

/** kind, window and sinks: absent for pure recurrent heads; window >= 1 and sinks >= 0 for recurrent+window. */
function parseKind(j: Record<string, unknown>, file: string): Pick<RecurformerSpec, 'kind' | 'window' | 'sinks'> {
  if (j.kind === undefined || j.kind === 'recurrent') {
    if (j.window !== undefined || j.sinks !== undefined) {
      throw new FormatError(file, 'recurformer.window and recurformer.sinks belong to kind "recurrent+window", but the kind is "recurrent"',
        'remove them, or set "kind": "recurrent+window"');
    }
    return {};
  }
  if (j.kind !== 'recurrent+window') {
    throw new FormatError(file, `recurformer.kind = ${JSON.stringify(j.kind)} is not one of ${REPLACED_KINDS.map((k) => `"${k}"`).join(', ')}`, 'fix config.json');
  }
  const sinks = j.sinks;
  if (typeof sinks !== 'number' || !Number.isSafeInteger(sinks) || sinks < 0) {
    throw new FormatError(file, `recurformer.sinks = ${JSON.stringify(sinks)} must be an integer >= 0`, 'fix the recurformer section of config.json');
  }
  return { kind: 'recurrent+window', window: posInt(j.window, 'window', file), sinks };
}
