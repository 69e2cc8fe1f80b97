#!/usr/bin/env bash
# The prepared GPU check of the PyTorch engine (docs/scale.md): trains models/demo-llama converted at 50% (distill,
# bf16 autocast) for a few minutes on one GPU, prints tokens/s and the loss curve, and writes the trained folder with
# every file under 16 MB. Runs on CPU too (--device cpu, fp32), which the test suite does in a short mode.
#
#   scripts/gpu/check.sh [--device cuda|cpu] [--minutes 3] [--steps 2000] [--batch 16] [--seq 256] [--out DIR]
#
# Needs python3 with torch and numpy (RECURFORMER_PYTHON picks the interpreter). The converted model and the token
# shard are made once with node (`--prepare-only` on a machine with node: scripts/gpu/work/, about 25 MB), so a GPU
# machine without node runs from a copy of the repository that carries scripts/gpu/work/.
# Back here: `recurformer eval ppl OUT/model --data data/tinystories-valid-excerpt/tinystories_val.txt` reads the result.
#
# Then two checks that print PASS, FAIL or SKIP (the script exits 1 when one FAILs, after running them all):
#   hf    when transformers imports: the trained folder exported as hf-torch (recurformer_torch.hf_export) loads with
#         AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True) and greedy generate() gives this package's
#         greedy tokens for 16 tokens (and the same logits);
#   fsdp  when torch.distributed.fsdp imports (PyTorch 2.x): --fsdp with 2 processes on the CPU (gloo) equals 1 process
#         without it after 3 steps, and on the GPU --fsdp (1 process) equals the plain run after 2 steps.
# --skip-extra leaves them out.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${RECURFORMER_GPU_WORK:-$ROOT/scripts/gpu/work}"
PY="${RECURFORMER_PYTHON:-python3}"
DEVICE=cuda MINUTES=3 STEPS=2000 BATCH=16 SEQ=256 OUT="$ROOT/scripts/gpu/work/run" PREP_ONLY=0 MODEL="" SHARD="" EVAL_EVERY="" EVAL_BATCHES=4 EXTRA=1
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --minutes) MINUTES="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --seq) SEQ="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;   # a converted folder instead of the prepared one
    --shard) SHARD="$2"; shift 2 ;;   # a token shard instead of the prepared one
    --eval-every) EVAL_EVERY="$2"; shift 2 ;;
    --eval-batches) EVAL_BATCHES="$2"; shift 2 ;;
    --prepare-only) PREP_ONLY=1; shift ;;
    --skip-extra) EXTRA=0; shift ;;
    *) echo "check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
DATA="$ROOT/data/tinystories-valid-excerpt/tinystories_val.txt"
if [ -z "$MODEL" ]; then
  MODEL="$WORK/demo-llama-50"
  if [ ! -f "$MODEL/config.json" ]; then
    command -v node >/dev/null || { echo "check.sh: $MODEL is missing and node is not here: run scripts/gpu/check.sh --prepare-only where node is, and carry scripts/gpu/work" >&2; exit 2; }
    node "$ROOT/bin/recurformer.js" analyze "$ROOT/models/demo-llama" --data "$DATA" --samples 8 --seq 256 --out "$WORK/analysis" >/dev/null
    node "$ROOT/bin/recurformer.js" convert "$ROOT/models/demo-llama" --analysis "$WORK/analysis/analysis.json" --budget 0.5 --out "$MODEL" --force >/dev/null
  fi
fi
if [ -z "$SHARD" ]; then
  SHARD="$(ls "$WORK"/cache/tokens-*.bin 2>/dev/null | head -1 || true)"
  if [ -z "$SHARD" ]; then
    command -v node >/dev/null || { echo "check.sh: no token shard in $WORK/cache and node is not here: run --prepare-only where node is" >&2; exit 2; }
    SHARD="$(node "$ROOT/scripts/gpu/prepare.mjs" "$MODEL" "$DATA" "$WORK/cache")"
  fi
fi
[ "$PREP_ONLY" = 1 ] && { echo "prepared: $MODEL and $SHARD"; exit 0; }

"$PY" -c 'import torch, numpy' 2>/dev/null || { echo "check.sh: $PY cannot import torch and numpy (pip install torch numpy)" >&2; exit 2; }
PRECISION=fp32; case "$DEVICE" in cuda*) PRECISION=bf16 ;; esac
[ -n "$EVAL_EVERY" ] || EVAL_EVERY=$(( STEPS / 10 > 0 ? STEPS / 10 : 1 ))
"$PY" -c 'import torch, sys; print(f"torch {torch.__version__}, device {sys.argv[1]}: " + (torch.cuda.get_device_name(0) if sys.argv[1].startswith("cuda") else "cpu"))' "$DEVICE"
PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m recurformer_torch.train "$MODEL" --teacher "$ROOT/models/demo-llama" \
  --data "$SHARD" --stage distill --steps "$STEPS" --batch "$BATCH" --seq "$SEQ" --lr 3e-4 --warmup 10 --eval-every "$EVAL_EVERY" \
  --eval-batches "$EVAL_BATCHES" --save-every 0 --out "$OUT" --force --device "$DEVICE" --precision "$PRECISION" \
  --max-shard-size 15000000 --time-limit "$(( MINUTES * 60 ))" --json > "$OUT.summary.json"
"$PY" - "$OUT" "$MODEL" <<'PYEOF'
import json, os, sys
out, before = sys.argv[1], sys.argv[2]
s = json.load(open(out + ".summary.json"))
recs = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
train = [r for r in recs if r["type"] == "train"]
print(f"device {s['device']} ({s['precision']}), {s['world']} process(es): {s['steps']} steps, {s['tokens']} tokens, "
      f"{s['tokPerSec']:.0f} tokens/s (optimizer steps only), {s['elapsedSec']:.0f} s in all")
print("loss curve (train loss, mean over each tenth of the run):")
n = max(1, len(train) // 10)
for i in range(0, len(train), n):
    part = train[i:i + n]
    print(f"  steps {part[0]['step']:>5}-{part[-1]['step']:<5} loss {sum(r['loss'] for r in part) / len(part):.4f}")
for r in recs:
    if r["type"] == "eval":
        print(f"  eval step {r['step']:>5}: val loss {r['loss']:.4f}  ce {r['ce']:.4f}  ppl {r['ppl']:.3f}  KL {r.get('kl', float('nan')):.4f}")
f, l = s["firstEval"], s["lastEval"]
print(f"validation: ppl {f['ppl']:.3f} -> {l['ppl']:.3f}, KL {f['kl']:.4f} -> {l['kl']:.4f}")
big = [(n, os.path.getsize(os.path.join(s["modelDir"], n))) for n in sorted(os.listdir(s["modelDir"]))]
for name, size in big:
    print(f"  {name}: {size / 1e6:.2f} MB")
assert all(size < 16_000_000 for _, size in big), "a file of the trained folder is 16 MB or more"
print(f"trained folder: {s['modelDir']}")
print("back here, the same comparison with this project's engine (KL(teacher || student), lower is better):")
for m in (before, s["modelDir"]):
    print(f"  recurformer eval agree {m} --teacher models/demo-llama --data data/tinystories-valid-excerpt/tinystories_val.txt --max-tokens 8192")
PYEOF

[ "$EXTRA" = 1 ] || exit 0
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
STATUS=0
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

# ---- hf: transformers loads the trained folder through its auto_map and generates our tokens -----------------------
if "$PY" -c 'import transformers' 2>/dev/null; then
  "$PY" -m recurformer_torch.hf_export "$OUT/model" --out "$SCRATCH/hf" >/dev/null || { echo "FAIL hf: the export failed"; STATUS=1; }
  [ -f "$SCRATCH/hf/modeling_recurformer.py" ] && "$PY" - "$SCRATCH/hf" "$DEVICE" <<'PYEOF' || STATUS=1
import sys
import torch
import transformers
from transformers import AutoModelForCausalLM
from recurformer_torch import load_folder
from recurformer_torch.model import greedy

path, device = sys.argv[1], sys.argv[2]
try:
    hf = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True, device_map=device)
    ours = load_folder(path).to(device).eval()
    V = ours.cfg.vocab_size
    prompt = [ours.cfg.bos_id] + [(37 * i + 11) % V for i in range(1, 12)]
    want, _ = greedy(ours, prompt, 16)
    ids = torch.tensor([prompt], device=device)
    with torch.no_grad():
        dl = float((hf(input_ids=ids).logits - ours(ids)).abs().max())
    eos = ours.cfg.eos_id[0] if ours.cfg.eos_id else 0
    got = hf.generate(ids, max_new_tokens=16, do_sample=False, num_beams=1, pad_token_id=eos)[0, len(prompt):].tolist()
    # generate() stops at EOS; up to there the tokens must be ours
    ok = got == want[:len(got)] and (len(got) == 16 or got[-1] in ours.cfg.eos_id) and dl <= 1e-4
    print(f"{'PASS' if ok else 'FAIL'} hf: transformers {transformers.__version__}, {type(hf).__name__} via AutoModelForCausalLM "
          f"(trust_remote_code): generate() {len(got)} tokens {'=' if got == want[:len(got)] else '!='} our greedy; "
          f"max |logits diff| {dl:.3g}" + ("" if ok else f"\n  generate: {got}\n  ours:     {want}"))
    sys.exit(0 if ok else 1)
except Exception as e:  # a FAIL line, not a traceback that ends the script
    import traceback
    traceback.print_exc()
    print(f"FAIL hf: {type(e).__name__}: {e}")
    sys.exit(1)
PYEOF
else
  echo "SKIP hf: $PY cannot import transformers"
fi

# ---- fsdp: sharded training equals the unsharded run ----------------------------------------------------------------
fsdp_args() {  # OUT DEVICE STEPS EXTRA...
  local out="$1" dev="$2" steps="$3"; shift 3
  echo "-m recurformer_torch.train $MODEL --teacher $ROOT/models/demo-llama --data $SHARD --stage distill --steps $steps --batch 4"
  echo " --seq 64 --lr 1e-3 --warmup 1 --accum 2 --ce-weight 0.5 --trainable recurrent+norms --eval-batches 1 --save-every 0"
  echo " --out $out --force --device $dev --precision fp32 --quiet $*"
}
compare_runs() {  # A B TOL LABEL
  "$PY" - "$@" <<'PYEOF'
import os, sys, torch
a_dir, b_dir, tol, label = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
try:
    a = torch.load(os.path.join(a_dir, "checkpoint.pt"), map_location="cpu")
    b = torch.load(os.path.join(b_dir, "checkpoint.pt"), map_location="cpu")
    from recurformer_torch import load_folder
    wa, wb = load_folder(os.path.join(a_dir, "model")).state_dict(), load_folder(os.path.join(b_dir, "model")).state_dict()
    dw = max(float((a["weights"][n] - b["weights"][n]).abs().max()) for n in a["names"])
    df = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    do = max(float((sa[k]["exp_avg"] - sb[k]["exp_avg"]).abs().max()) for k in sa) if sorted(sa) == sorted(sb) else float("inf")
    base = load_folder(os.environ["FSDP_BASE"]).state_dict()
    moved = max(float((wa[n] - base[n]).abs().max()) for n in a["names"])
    ok = a["step"] == b["step"] and a["names"] == b["names"] and max(dw, df, do) <= tol and moved > 1e-4
    print(f"{'PASS' if ok else 'FAIL'} fsdp {label}: after {b['step']} steps max |weight diff| {dw:.3g} (checkpoint), {df:.3g} "
          f"(saved folder), |exp_avg diff| {do:.3g} (tolerance {tol:g}); trained: max change {moved:.3g}")
    sys.exit(0 if ok else 1)
except Exception as e:
    print(f"FAIL fsdp {label}: {type(e).__name__}: {e}")
    sys.exit(1)
PYEOF
}
if "$PY" -c 'import torch.distributed.fsdp' 2>/dev/null; then
  export FSDP_BASE="$MODEL"
  # CPU, gloo: 2 processes sharded vs 1 process unsharded, the same global batch
  # shellcheck disable=SC2046
  if CUDA_VISIBLE_DEVICES= timeout 300 "$PY" $(fsdp_args "$SCRATCH/cpu1" cpu 3 --threads 4) > "$SCRATCH/cpu1.log" 2>&1; then
    PORT=$(( 20000 + RANDOM % 20000 )) pids=() fail=0
    for r in 0 1; do
      # shellcheck disable=SC2046
      CUDA_VISIBLE_DEVICES= RANK=$r LOCAL_RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT \
        timeout 300 "$PY" $(fsdp_args "$SCRATCH/cpu2" cpu 3 --threads 4 --fsdp) > "$SCRATCH/cpu2.$r.log" 2>&1 &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail=1; done
    if [ "$fail" = 0 ]; then compare_runs "$SCRATCH/cpu1" "$SCRATCH/cpu2" 1e-4 "cpu (gloo), 2 processes sharded vs 1 unsharded" || STATUS=1
    else echo "FAIL fsdp cpu (gloo), 2 processes: the sharded run failed:"; tail -5 "$SCRATCH/cpu2.0.log"; STATUS=1; fi
  else
    echo "FAIL fsdp cpu: the unsharded reference run failed:"; tail -5 "$SCRATCH/cpu1.log"; STATUS=1
  fi
  case "$DEVICE" in
    cuda*)
      # shellcheck disable=SC2046
      if timeout 300 "$PY" $(fsdp_args "$SCRATCH/gpu1" "$DEVICE" 2) > "$SCRATCH/gpu1.log" 2>&1 \
         && timeout 300 "$PY" $(fsdp_args "$SCRATCH/gpu2" "$DEVICE" 2 --fsdp) > "$SCRATCH/gpu2.log" 2>&1; then
        compare_runs "$SCRATCH/gpu1" "$SCRATCH/gpu2" 1e-4 "$DEVICE, 1 process sharded vs unsharded (fp32)" || STATUS=1
      else
        echo "FAIL fsdp $DEVICE: a run failed:"; tail -5 "$SCRATCH/gpu1.log" "$SCRATCH/gpu2.log"; STATUS=1
      fi ;;
  esac
else
  echo "SKIP fsdp: $PY cannot import torch.distributed.fsdp (PyTorch >= 2.0 needed)"
fi
exit "$STATUS"
