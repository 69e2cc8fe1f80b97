"""The training loop of the PyTorch engine: the stages of src/train/loop.ts (align, distill; pretrain of an existing
model) with the same options, the same data and the same schedule, at scale.

  python -m recurformer_torch.train RUN.json                      (what `recurformer train --engine torch` runs)
  torchrun --nproc_per_node 8 -m recurformer_torch.train RUN.json (data parallel, one process per GPU)
  python -m recurformer_torch.train MODEL --teacher T --data SHARD.bin --out DIR [--config F] [--set k=v] [--steps n]

RUN.json is written by `recurformer train --engine torch`: {"options": {...resolved options...}, "shard": PATH,
"dataKey": KEY}; the TypeScript side tokenizes (once, into the shard cache), this side trains.

One optimizer step = `accum` micro-batches of `batch` sequences (the global batch: with W processes each takes
batch / W rows of the same batch, so the data order, the schedule and a checkpoint do not depend on W). Each
micro-batch's loss is scaled by 1 / accum; after the last one the gradients are averaged over the processes with
one all_reduce (what DDP does; align calls the recurrent heads directly, past a DDP wrapper's forward). AdamW
(betas 0.9, 0.95, eps 1e-8, weight decay on matrices), linear warmup + cosine to minLrRatio, global-norm clipping,
a NaN/inf guard that skips the update but keeps the data and the schedule moving, as the TypeScript loop does.

Checkpoints (DIR/checkpoint.pt, written atomically by rank 0) hold the trainable tensors, AdamW's state, the data
position (epoch, cursor, the epoch's RNG state), the counters and the options: --resume DIR continues bit for bit
(same device, dtype and thread count). The trained model goes to DIR/model in the folder format the TypeScript side
reads (docs/formats.md).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import sys
import time
from typing import Dict, List, Optional

import torch

from . import options as opt_mod
from .data import Batcher, PackedData, read_shard
from .folder import load_folder, save_folder
from .objectives import evaluate, objective
from .safetensors_io import DEFAULT_MAX_SHARD_BYTES

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
NORM = re.compile(r"(norm|ln_\d+|ln_f)\.weight$|(ln_\d+|ln_f)\.bias$|\.recurrent\.norm_w$")


def select_trainable(model, which: str):
    """The tensors that train, by name in the model's order (src/train/model-setup.ts selectTrainable)."""
    names, params = [], []
    for name, p in model.named_parameters():
        on = which == "all" or ".recurrent." in name or (which == "recurrent+norms" and p.dim() == 1 and bool(NORM.search(name)))
        p.requires_grad_(on)
        if on:
            names.append(name)
            params.append(p)
    if not params:
        raise ValueError(f"train: trainable = {which} selects no tensors of this model"
                         + ("" if which == "all" else " (the model has no recurrent heads: convert it first)"))
    return names, params


def cosine_schedule(lr: float, warmup: int, total: int, min_ratio: float):
    """Linear warmup to lr, then cosine decay to min_ratio * lr at `total` (src/tensor/optim.ts cosineSchedule)."""
    min_lr = lr * min_ratio

    def f(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        if step >= total:
            return min_lr
        p = (step - warmup) / max(1, total - warmup)
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * p))

    return f


class Dist:
    """The process group when launched by torchrun (or spawned by a test); a single process otherwise."""

    def __init__(self, device: str):
        self.device = torch.device(device)  # NCCL reduces CUDA tensors only
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.on = self.world > 1
        if self.on and not torch.distributed.is_initialized():
            backend = "nccl" if device.startswith("cuda") else "gloo"
            torch.distributed.init_process_group(backend)

    def mean_(self, tensors: List[torch.Tensor]) -> None:
        """Average tensors over the processes in place, with one all_reduce."""
        if not self.on or not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        torch.distributed.all_reduce(flat)
        flat /= self.world
        at = 0
        for t in tensors:
            t.copy_(flat[at: at + t.numel()].view_as(t))
            at += t.numel()

    def mean(self, x: float) -> float:
        if not self.on:
            return x
        t = torch.tensor([x], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return float(t) / self.world

    def barrier(self) -> None:
        if self.on:
            torch.distributed.barrier()


class Sharded:
    """FSDP (--fsdp): the student's parameters, gradients and AdamW state sharded over the processes, one FSDP unit
    per decoder block (its recurrent heads inside) plus the root (embeddings, final norm, head); the teacher, frozen,
    sharded the same way (it is as big as the student). torch.distributed.fsdp, the module accelerate drives, with
    use_orig_params so the trainable subset keeps its names and only it has gradients. Gradients are averaged by
    FSDP's reduce-scatter; clipping uses FSDP's global norm; a checkpoint holds the full tensors and the optimizer
    state in the same layout as an unsharded run (gathered on rank 0), so the folder and the checkpoint do not
    depend on --fsdp or the number of processes."""

    def __init__(self, device: str):
        try:
            from torch.distributed.fsdp import FullyShardedDataParallel, StateDictType
            from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy
        except Exception as e:  # torch 1.13 on Python 3.11 fails inside the import (a dataclass error)
            raise ValueError(f"train: --fsdp needs torch.distributed.fsdp (PyTorch >= 2.0); torch {torch.__version__} here "
                             f"cannot import it ({type(e).__name__}: {e})") from e
        self.FSDP, self.StateDictType, self.policy_fn = FullyShardedDataParallel, StateDictType, transformer_auto_wrap_policy
        self.device = device
        if not torch.distributed.is_initialized():  # one process: FSDP still needs a process group
            backend = "nccl" if device.startswith("cuda") else "gloo"
            torch.distributed.init_process_group(backend, store=torch.distributed.HashStore(), rank=0, world_size=1)

    def wrap(self, module):
        import functools
        from .model import Gpt2Block, LlamaBlock
        kw = {"auto_wrap_policy": functools.partial(self.policy_fn, transformer_layer_cls={LlamaBlock, Gpt2Block}),
              "use_orig_params": True}
        # the device FSDP moves each unit to; on the CPU (gloo: tests, PyTorch >= 2.2) it must be named (2.5 refuses None)
        kw["device_id"] = torch.device(self.device) if self.device.startswith("cuda") else torch.device("cpu")
        return self.FSDP(module, **kw)

    def clip(self, model, max_norm: float) -> float:
        """Clips to max_norm (0: no clipping) and returns the global gradient norm before clipping."""
        return float(model.clip_grad_norm_(max_norm if max_norm > 0 else float("inf")))

    def _full(self, model):
        from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig
        return self.FSDP.state_dict_type(model, self.StateDictType.FULL_STATE_DICT,
                                         FullStateDictConfig(offload_to_cpu=True, rank0_only=True),
                                         FullOptimStateDictConfig(offload_to_cpu=True, rank0_only=True))

    def full_state_dict(self, model) -> Dict[str, torch.Tensor]:
        """Every tensor of the model, full, on rank 0 (a collective: every rank calls it)."""
        with self._full(model):
            return {_clean(k): v for k, v in model.state_dict().items()}

    def optim_state(self, model, optim, order: List[str]) -> dict:
        """AdamW's state gathered to rank 0, in torch's unsharded layout (parameters numbered in `order`)."""
        with self._full(model):
            osd = self.FSDP.optim_state_dict(model, optim)
        if "param_groups" not in osd:  # rank0_only: the other processes get nothing
            return {}
        index = {n: i for i, n in enumerate(order)}
        groups = []
        for g in osd["param_groups"]:
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": sorted(index[_clean(n)] for n in g["params"])})
        return {"state": {index[_clean(n)]: v for n, v in osd["state"].items()}, "param_groups": groups}

    def load_optim_state(self, model, optim, saved: dict, order: List[str]) -> None:
        named = {"state": {order[i]: v for i, v in saved["state"].items()},
                 "param_groups": [{**{k: v for k, v in g.items() if k != "params"}, "params": [order[i] for i in g["params"]]}
                                  for g in saved["param_groups"]]}
        optim.load_state_dict(self.FSDP.optim_state_dict_to_load(model=model, optim=optim, optim_state_dict=named))


def _clean(name: str) -> str:
    return name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")


def file_key(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:20]


def save_checkpoint(path: str, state: dict) -> None:
    """torch.save to a temp file beside it, fsync, rename: a kill at any moment leaves the old or the new one."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


class Progress:
    """tqdm when importable and stderr is a terminal; else a line every ~5% of the run."""

    def __init__(self, total: int, start: int, quiet: bool):
        self.total, self.quiet, self.bar, self.every = total, quiet, None, max(1, total // 20)
        if not quiet and sys.stderr.isatty():
            with contextlib.suppress(ImportError):
                from tqdm import tqdm
                self.bar = tqdm(total=total, initial=start, desc="train", file=sys.stderr)

    def update(self, r: dict) -> None:
        if self.quiet:
            return
        loss = f"{r['loss']:.4f}" if r["type"] == "train" else "skipped"
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=loss, tps=round(r.get("tokPerSec", 0)))
        elif r["step"] % self.every == 0 or r["step"] == self.total:
            print(f"train step {r['step']}/{self.total} loss {loss} lr {r.get('lr', 0):.3g} "
                  f"{r.get('tokPerSec', 0):.0f} tok/s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(cfg: Dict, shard: str, data_key: Optional[str] = None, resume: Optional[str] = None, force: bool = False,
        device: str = "cpu", precision: str = "fp32", max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
        stop_after: Optional[int] = None, quiet: bool = False, time_limit: Optional[float] = None, fsdp: bool = False) -> dict:
    """Trains (or continues) a run; returns a summary (steps, tokens, first/last eval, elapsed, tokens/s). `fsdp`:
    shard the student and the teacher over the processes (Sharded); distill and pretrain only."""
    dist = Dist(device)
    if fsdp:
        if cfg["stage"] == "align":
            raise ValueError("train: --fsdp runs distill and pretrain; align feeds each layer's recurrent heads the "
                             "teacher's stream outside the student's forward (train it with DDP: its trainable heads are small)")
        if (cfg.get("hiddenWeight") or 0) > 0:
            raise ValueError("train: --fsdp does not compute the hidden-state term (hiddenWeight > 0) of distill; set it to 0 or train without --fsdp")
    shard_ = Sharded(device) if fsdp else None
    out = cfg["out"]
    os.makedirs(out, exist_ok=True)
    ckpt_path = os.path.join(out, CHECKPOINT)
    restore = None
    if resume:
        restore = torch.load(os.path.join(resume, CHECKPOINT), map_location="cpu")
    elif os.path.exists(ckpt_path) and dist.rank == 0:
        if not force:
            raise ValueError(f"train: --out {out} already holds a training run ({CHECKPOINT}); pass --force to start over, "
                             f"or --resume {out} to continue it")
        os.remove(ckpt_path)
    dist.barrier()
    if cfg["stage"] == "pretrain" and cfg.get("init"):
        raise ValueError("train: the torch engine continues existing models; pretrain a fresh one (--init) with --engine ts")
    key = data_key or file_key(shard)
    if restore and restore["dataKey"] != key:
        raise ValueError(f"{resume}: was trained on data with key {restore['dataKey']}, the data now hashes to {key} "
                         "(resume with the same --data)")

    # with --fsdp the models stay on the CPU until FSDP moves each unit's shard to the device
    student = load_folder(cfg["model"])
    student = student if fsdp else student.to(device)
    teacher = None
    if cfg["stage"] != "pretrain":
        teacher = load_folder(cfg["teacher"]).eval()
        teacher = teacher if fsdp else teacher.to(device)
        for p in teacher.parameters():
            p.requires_grad_(False)
        if teacher.cfg.vocab_size != student.cfg.vocab_size:
            raise ValueError("train: teacher and student vocabularies differ (distill from the model the student was converted from)")
    if cfg["batch"] % dist.world:
        raise ValueError(f"train: batch {cfg['batch']} is not a multiple of the {dist.world} processes")
    tokens_all = read_shard(shard)
    data = PackedData(tokens_all, cfg["seq"], student.cfg.bos_id, cfg["valFraction"], cfg["packing"])
    names, params = select_trainable(student, cfg["trainable"])
    if restore:  # the weights go in before FSDP shards them
        if restore["names"] != names:
            raise ValueError(f"{resume}: holds trainable tensors {len(restore['names'])}, this run trains {len(names)} (the --trainable set differs)")
        with torch.no_grad():
            for n, p in zip(names, params):
                p.copy_(restore["weights"][n])
    matrices = {n for n, p in zip(names, params) if p.dim() >= 2}  # (shapes before sharding flattens them)
    base = student
    if fsdp:
        student = shard_.wrap(student)
        if teacher is not None:
            teacher = shard_.wrap(teacher)
        named = {_clean(n): p for n, p in student.named_parameters() if p.requires_grad}
        if set(named) != set(names):
            raise RuntimeError(f"train: FSDP changed the trainable parameters ({sorted(set(named) ^ set(names))[:4]})")
        params = [named[n] for n in names]  # the wrapped model's parameters, in the unwrapped order
    decay = [p for n, p in zip(names, params) if n in matrices]
    no_decay = [p for n, p in zip(names, params) if n not in matrices]
    order = [n for n in names if n in matrices] + [n for n in names if n not in matrices]  # the optimizer's numbering
    groups = [g for g in ({"params": decay, "weight_decay": cfg["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    optim = torch.optim.AdamW(groups, lr=cfg["lr"], betas=(0.9, 0.95), eps=1e-8)
    schedule = cosine_schedule(cfg["lr"], cfg["warmup"], cfg["steps"], cfg["minLrRatio"])
    step = skipped = tokens = 0
    position = None
    elapsed0 = 0.0
    if restore:
        if fsdp:
            shard_.load_optim_state(student, optim, restore["optimizer"], order)
        else:
            optim.load_state_dict(restore["optimizer"])
        step, skipped, tokens = restore["step"], restore["skipped"], restore["tokens"]
        position, elapsed0 = restore["data"], restore["elapsedSec"]
    batcher = Batcher(data, cfg["batch"], cfg["seed"], position)

    log_path = os.path.join(out, METRICS)
    if dist.rank == 0:
        keep = []
        if restore:
            src = os.path.join(resume, METRICS)
            if os.path.exists(src):
                for line in open(src, encoding="utf-8"):
                    with contextlib.suppress(ValueError):
                        if line.strip() and json.loads(line)["step"] <= step:
                            keep.append(line if line.endswith("\n") else line + "\n")
        with open(log_path, "w", encoding="utf-8") as f:
            f.writelines(keep)

    def log(r: dict) -> None:
        if dist.rank == 0:
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(r) + "\n")

    cuda = device.startswith("cuda")
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda and precision == "bf16" else contextlib.nullcontext
    first_eval = last_eval = None

    def do_eval():
        nonlocal first_eval, last_eval
        if dist.rank != 0 and not fsdp:  # sharded, every process takes part in each forward
            return
        student.eval()
        with amp():
            r = evaluate(student, teacher, data.val_batches(cfg["batch"], cfg["evalBatches"]), cfg, device)
        student.train()
        if dist.rank != 0:
            return
        last_eval = {"type": "eval", "step": step, **r}
        first_eval = first_eval or last_eval
        log(last_eval)
        if not quiet:
            print(f"step {step}: val loss {r['loss']:.4f}, ppl {r['ppl']:.3f}" + (f", KL {r['kl']:.4f}" if "kl" in r else ""),
                  file=sys.stderr, flush=True)

    def checkpoint():
        if fsdp:  # gathered on rank 0 (collectives: every process calls them)
            full = shard_.full_state_dict(student)
            weights = {n: full[n].clone() for n in names} if dist.rank == 0 else None
            opt_state = shard_.optim_state(student, optim, order)
        else:
            weights = {n: p.detach().cpu().clone() for n, p in zip(names, params)}
            opt_state = optim.state_dict()
        if dist.rank == 0:
            save_checkpoint(ckpt_path, {
                "version": 1, "engine": "torch", "config": cfg, "step": step, "skipped": skipped, "tokens": tokens,
                "names": names, "weights": weights,
                "optimizer": opt_state, "data": batcher.position(), "dataKey": key,
                "elapsedSec": elapsed0 + time.time() - t_start,
            })
        dist.barrier()

    t_start = time.time()
    if not restore:
        do_eval()
    stop_at = min(cfg["steps"], stop_after if stop_after is not None else cfg["steps"])
    delay = float(os.environ.get("RECURFORMER_TORCH_STEP_DELAY", "0"))  # tests: a window to kill the process in
    per = cfg["batch"] // dist.world
    progress = Progress(cfg["steps"], step, quiet or dist.rank != 0)
    saved_at = -1
    train_tokens0, train_sec = tokens, 0.0
    timed_out = False
    while step < stop_at:
        if time_limit is not None and dist.mean(float(time.time() - t_start >= time_limit)) > 0:
            timed_out = True  # a time-boxed run (scripts/gpu/check.sh) ends here as if this were the last step
            break
        t0 = time.time()
        lr = schedule(step)
        for g in optim.param_groups:
            g["lr"] = lr
        loss_sum, parts = 0.0, {}
        for _ in range(cfg["accum"]):
            xb, yb = batcher.next()
            x = torch.as_tensor(xb[dist.rank * per: (dist.rank + 1) * per], device=device)
            y = torch.as_tensor(yb[dist.rank * per: (dist.rank + 1) * per], device=device)
            with amp():
                loss, p = objective(student, teacher, x, y, cfg)
            l = dist.mean(float(loss.detach()))
            loss_sum += l
            for k, v in p.items():
                parts[k] = parts.get(k, 0.0) + dist.mean(v) / cfg["accum"]
            if math.isfinite(l):
                (loss / cfg["accum"] if cfg["accum"] > 1 else loss).backward()
        if fsdp:  # FSDP's reduce-scatter averaged the gradients over the processes
            norm = shard_.clip(student, cfg["clip"])
        else:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            for p, g in zip(params, grads):
                p.grad = g
            dist.mean_(grads)
            norm = float(torch.nn.utils.clip_grad_norm_(params, cfg["clip"]) if cfg["clip"] > 0
                         else torch.sqrt(sum((g.float() ** 2).sum() for g in grads)))
        if math.isfinite(loss_sum) and math.isfinite(norm):
            optim.step()
        optim.zero_grad(set_to_none=True)
        loss_mean = loss_sum / cfg["accum"]
        step_tokens = cfg["accum"] * cfg["batch"] * cfg["seq"]
        step += 1
        tokens += step_tokens
        if cuda:
            torch.cuda.synchronize()
        train_sec += time.time() - t0
        if not (math.isfinite(loss_mean) and math.isfinite(norm)):
            skipped += 1
            r = {"type": "skip", "step": step, "loss": loss_mean, "gradNorm": norm}
        else:
            r = {"type": "train", "step": step, "loss": loss_mean, "lr": lr, "gradNorm": norm, "tokens": tokens,
                 "tokPerSec": step_tokens / max(1e-9, time.time() - t0), "parts": parts}
        log(r)
        progress.update(r)
        last = step == cfg["steps"]
        if (cfg["evalEvery"] > 0 and step % cfg["evalEvery"] == 0) or last:
            do_eval()
        if (cfg["saveEvery"] > 0 and step % cfg["saveEvery"] == 0) or last or step == stop_at:
            checkpoint()
            saved_at = step
        if delay:
            time.sleep(delay)
    progress.close()
    if timed_out and (not last_eval or last_eval["step"] != step):
        do_eval()
    if saved_at != step:
        checkpoint()
    model_dir = os.path.join(out, "model")
    if step == cfg["steps"] or timed_out:
        full = shard_.full_state_dict(student) if fsdp else None
        if dist.rank == 0:
            save_folder(base, model_dir, dtype="keep", max_shard_bytes=max_shard_bytes, state_dict=full)
    dist.barrier()
    return {"steps": step, "skipped": skipped, "tokens": tokens, "firstEval": first_eval, "lastEval": last_eval,
            "modelDir": model_dir, "elapsedSec": elapsed0 + time.time() - t_start,
            "tokPerSec": (tokens - train_tokens0) / max(1e-9, train_sec), "world": dist.world, "timedOut": timed_out,
            "device": device, "precision": precision, "fsdp": fsdp}


# ---- command line ------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recurformer_torch.train",
                                description="Train a converted model's recurrent heads with PyTorch (align / distill), "
                                            "options as `recurformer train` reads them.")
    p.add_argument("run", nargs="?", help="RUN.json written by `recurformer train --engine torch`, or the student MODEL")
    for key, s in opt_mod.OPTIONS.items():
        if s["flag"]:
            p.add_argument(f"--{s['flag']}", dest=f"opt_{key}", metavar=key, help=s["help"])
    p.add_argument("--config", help="training options from a JSON file (a recipe stage)")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE, repeatable")
    p.add_argument("--shard", help="the token shard (tokens-*.bin) to train on; default: --data when it is one")
    p.add_argument("--resume", help="continue the run saved in this folder")
    p.add_argument("--force", action="store_true", help="start over in an --out that holds a run")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available; torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--precision", choices=["bf16", "fp32"], default=None, help="bf16 autocast (default on GPUs) or fp32")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--max-shard-size", type=int, default=DEFAULT_MAX_SHARD_BYTES, help="largest safetensors file of the saved model (bytes)")
    p.add_argument("--stop-after", type=int, default=None, help="return after this many steps (with a checkpoint), as if interrupted")
    p.add_argument("--time-limit", type=float, default=None, help="seconds: end the run (eval, checkpoint, model) at the first step after it")
    p.add_argument("--fsdp", action="store_true", help="shard the student and the teacher over the processes (FSDP; "
                   "PyTorch >= 2.0; distill and pretrain) for models that do not fit one GPU")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    a = _parser().parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    values: Dict = {}
    shard, data_key = a.shard, None
    if a.run and a.run.endswith(".json") and os.path.isfile(a.run):
        with open(a.run, encoding="utf-8") as f:
            rf = json.load(f)
        values.update(rf["options"])
        shard = shard or rf.get("shard")
        data_key = rf.get("dataKey")
    elif a.run:
        values["model"] = a.run
    if a.config:
        values.update(opt_mod.read_options_file(a.config))
    for key, s in opt_mod.OPTIONS.items():
        v = getattr(a, f"opt_{key}", None)
        if v is not None:
            values[key] = opt_mod.option_from_string(key, v)
    for kv in a.set:
        k, _, v = kv.partition("=")
        key = opt_mod.key_of(k.strip())
        if key is None:
            raise SystemExit(f"train: --set {k} is not a training option")
        values[key] = opt_mod.option_from_string(key, v)
    if a.resume:
        saved = torch.load(os.path.join(a.resume, CHECKPOINT), map_location="cpu")
        base = dict(saved["config"])
        base["out"] = a.resume
        base.update({k: v for k, v in values.items() if k != "out" or v})
        values = base
    cfg = opt_mod.make_train_config(values)
    shard = shard or cfg["data"]
    local = os.environ.get("LOCAL_RANK")
    device = a.device or ((f"cuda:{local}" if local is not None else "cuda") if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and torch.device(device).index is not None:
        torch.cuda.set_device(torch.device(device))
    precision = a.precision or ("bf16" if device.startswith("cuda") else "fp32")
    r = run(cfg, shard, data_key, resume=a.resume, force=a.force, device=device, precision=precision,
            max_shard_bytes=a.max_shard_size, stop_after=a.stop_after, quiet=a.quiet, time_limit=a.time_limit,
            fsdp=a.fsdp)
    if int(os.environ.get("RANK", "0")) == 0:
        if a.json:
            print(json.dumps(r))
        else:
            print(f"trained {r['steps']} steps ({r['tokens']} tokens, {r['tokPerSec']:.0f} tok/s, {r['world']} process(es)); "
                  f"model in {r['modelDir']}", file=sys.stderr)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
