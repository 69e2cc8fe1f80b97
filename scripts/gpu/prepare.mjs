#!/usr/bin/env node
// Writes the token shard scripts/gpu/check.sh trains on: `node scripts/gpu/prepare.mjs MODEL DATA CACHE_DIR` prints
// the shard's path. The same tokenizer and pipeline as `recurformer train` (src/train/data.ts, through dist/).
import { loadModel } from '../../dist/src/index.js';
import { loadShard } from '../../dist/src/train/data.js';

const [model, data, cache] = process.argv.slice(2);
const tok = loadModel(model).tokenizer;
if (!tok) throw new Error(`prepare: ${model} has no tokenizer`);
process.stdout.write(`${loadShard(data, tok, cache).path}\n`);
