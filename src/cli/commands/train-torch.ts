/**
 * `recurformer train --engine torch ...`: the same stage, options and data through the PyTorch package in python/
 * (docs/scale.md). This side resolves the options (the same schema), tokenizes the data once into the token shard
 * cache (src/train/data.ts, as the TypeScript engine does), writes OUT/torch-run.json and runs
 * `python3 -m recurformer_torch.train OUT/torch-run.json`; the trained model comes back as OUT/model in the folder
 * format every other command reads. Set RECURFORMER_PYTHON to choose the interpreter; `--torch-args` passes engine
 * flags (`--device cuda`, `--precision bf16`, `--threads 8`, `--max-shard-size 16000000`); `--torch-launcher` starts
 * it through a launcher instead (`torchrun --nproc_per_node 8`: data parallel, one process per GPU).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../io/model-load.js';
import { ArgumentError } from '../../tensor/errors.js';
import { absolutePaths, makeTrainConfig } from '../../train/config.js';
import { loadShard } from '../../train/data.js';
import { packageRoot } from '../common.js';

export const TORCH_RUN_FILE = 'torch-run.json';

/** How to get torch, said once (the CLI error and docs/scale.md). */
export const TORCH_INSTALL_HINT = 'install PyTorch for that python: `pip install torch numpy` (CPU-only wheels: '
  + '`pip install torch --index-url https://download.pytorch.org/whl/cpu`; Debian/Ubuntu: `apt-get install python3-torch`), '
  + 'or set RECURFORMER_PYTHON to a python that has torch; --engine ts trains without it';

export function torchPython(): string {
  return process.env.RECURFORMER_PYTHON || 'python3';
}

/** Checks that the interpreter can import torch and numpy; throws an ArgumentError saying how to install them. */
export function checkTorch(python = torchPython()): string {
  const r = spawnSync(python, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? `cannot run ${python} (${r.error.message})` : `${python} cannot import torch and numpy`;
    throw new ArgumentError('train', '--engine torch', why, TORCH_INSTALL_HINT);
  }
  return r.stdout.trim();
}

export interface TorchRunOpts {
  resume?: string;
  force?: boolean;
  json?: boolean;
  /** Extra engine flags for python (whitespace-separated). */
  torchArgs?: string;
  /** The command that starts python, e.g. `torchrun --nproc_per_node 8` (default: the interpreter itself). */
  launcher?: string;
}

/** Runs the stage on the PyTorch engine; returns the python process's exit status. */
export function runTorchTraining(values: Record<string, unknown>, o: TorchRunOpts): number {
  const python = torchPython();
  checkTorch(python);
  const extra = (o.torchArgs ?? '').split(/\s+/).filter(Boolean);
  const env = { ...process.env, PYTHONPATH: [join(packageRoot(), 'python'), process.env.PYTHONPATH].filter(Boolean).join(':') };
  let args: string[];
  if (o.resume) {
    args = ['-m', 'recurformer_torch.train', '--resume', o.resume, ...extra];
  } else {
    const cfg = absolutePaths(makeTrainConfig(values));
    if (cfg.stage === 'pretrain' && cfg.init) {
      throw new ArgumentError('train', '--engine torch', 'continues existing models; pretraining a fresh one (--init) runs on --engine ts');
    }
    const tok = loadModel(cfg.model!).tokenizer;
    if (!tok) throw new ArgumentError('train', 'tokenizer', 'none found beside the model', 'the torch engine trains on shards made with the model\'s tokenizer');
    const shard = loadShard(cfg.data, tok, cfg.cacheDir, { textKey: cfg.textKey }); // tokenized once, here
    mkdirSync(cfg.out, { recursive: true });
    const runFile = join(cfg.out, TORCH_RUN_FILE);
    writeFileSync(runFile, `${JSON.stringify({ options: cfg, shard: shard.path, dataKey: shard.key }, null, 2)}\n`);
    if (existsSync(join(cfg.out, 'checkpoint.bin')) && !o.force) {
      throw new ArgumentError('train', '--out', `${cfg.out} already holds a TypeScript training run`, 'pass --force or another --out');
    }
    args = ['-m', 'recurformer_torch.train', runFile, ...(o.force ? ['--force'] : []), ...(o.json ? ['--json'] : []), ...extra];
  }
  // a launcher (torchrun) takes `-m MODULE ARGS` as python does and starts one process per device
  const [cmd, ...pre] = o.launcher ? o.launcher.split(/\s+/).filter(Boolean) : [python];
  const r = spawnSync(cmd!, [...pre, ...args], { stdio: 'inherit', env });
  if (r.error) throw new ArgumentError('train', '--engine torch', `cannot run ${cmd!} (${r.error.message})`, TORCH_INSTALL_HINT);
  return r.status ?? 1;
}
