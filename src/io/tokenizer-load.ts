/**
 * Pick and load a tokenizer from a path: a Hugging Face folder or tokenizer.json, a GGUF file (its vocabulary), or
 * a llama2.c tokenizer.bin.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TokenizerError } from '../tensor/errors.js';
import { readGguf } from './gguf.js';
import { readTokenizerBin } from './llama2c.js';
import { tokenizerFromGguf } from './tokenizer-gguf.js';
import { readTokenizerJson } from './tokenizer-json.js';
import { spmFromTokenizerBin } from './tokenizer-spm.js';
import type { Tokenizer } from './tokenizer.js';

export function loadTokenizer(path: string): Tokenizer {
  if (existsSync(path) && statSync(path).isDirectory()) {
    const json = join(path, 'tokenizer.json');
    if (existsSync(json)) return readTokenizerJson(json);
    throw new TokenizerError('no tokenizer.json in this folder', 'SentencePiece tokenizer.model files are not supported; convert to tokenizer.json', path);
  }
  if (path.endsWith('.json')) return readTokenizerJson(path);
  if (path.endsWith('.gguf')) return tokenizerFromGguf(readGguf(path, { tensors: false }));
  if (path.endsWith('.bin')) return spmFromTokenizerBin(readTokenizerBin(path));
  throw new TokenizerError('unrecognized tokenizer file', 'pass a folder with tokenizer.json, a tokenizer.json, a .gguf or a llama2.c tokenizer.bin', path);
}
