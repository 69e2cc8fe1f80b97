#!/usr/bin/env bash
# Recreates the two demo models committed under models/ (about 3 h 40 min on 2 cores).
# Every step is seeded: the corpus (seed 0), the tokenizer (deterministic trainer), the initialization and data
# order (--seed 0). Run from the repository root after `npm install`.
set -euo pipefail
W=${1:-runs/demo-models}
mkdir -p "$W"
npx tsc -p tsconfig.json
node --import tsx scripts/demo/train-tokenizer.ts "$W/tok"
node --import tsx scripts/demo/build-corpus.ts "$W/corpus.jsonl" --seed 0 --synthetic 700
# Llama architecture: RoPE, GQA (8 query heads / 4 KV heads), context 2048, 6 layers, d_model 256, 5.8M parameters.
RECURFORMER_THREADS=2 node bin/recurformer.js train --init scripts/demo/llama-config.json --tokenizer "$W/tok" \
  --data "$W/corpus.jsonl" --seq 2048 --batch 2 --steps 600 --lr 2e-3 --min-lr 0.1 --warmup 30 --weight-decay 0.1 \
  --eval-every 150 --eval-batches 4 --save-every 50 --seed 0 --out "$W/llama" --json &
# GPT-2 architecture sibling: learned absolute positions, LayerNorm, GELU; context 1024, 4 layers, d_model 192.
RECURFORMER_THREADS=1 node bin/recurformer.js train --init scripts/demo/gpt2-config.json --tokenizer "$W/tok" \
  --data "$W/corpus.jsonl" --seq 1024 --batch 4 --steps 500 --lr 2e-3 --min-lr 0.1 --warmup 30 --weight-decay 0.1 \
  --eval-every 100 --eval-batches 4 --save-every 50 --seed 0 --out "$W/gpt2" --json &
wait
# The Llama model's retrieval curriculum. Stage 1 (induction): short sequences of copy documents (common words written
# twice) and short passkey / hashhop / needle documents until content-based copying forms (after about 3,000 steps;
# the second run only continues the first at a constant learning rate). Stage 2 (long context): sequences of 2048
# tokens of the full mix with retrieval documents up to the context, so the copying reaches across the whole window.
node --import tsx scripts/demo/build-corpus.ts "$W/induction.jsonl" --seed 3 --synthetic 2000 --max-fillers 10 \
  --max-pairs 16 --max-chars 1200 --repeat 30000 --max-copy 40 --real 0.2
node --import tsx scripts/demo/build-corpus.ts "$W/long.jsonl" --seed 4 --synthetic 1500 --repeat 6000 --max-copy 200
RECURFORMER_THREADS=2 node bin/recurformer.js train "$W/llama/model" --stage pretrain --data "$W/induction.jsonl" \
  --seq 256 --batch 8 --steps 3000 --lr 1e-3 --min-lr 0.5 --warmup 20 --weight-decay 0.1 --eval-every 250 \
  --eval-batches 4 --save-every 250 --seed 0 --out "$W/llama-ind1" --json
RECURFORMER_THREADS=2 node bin/recurformer.js train "$W/llama-ind1/model" --stage pretrain --data "$W/induction.jsonl" \
  --seq 256 --batch 8 --steps 1500 --lr 1e-3 --min-lr 1 --warmup 10 --weight-decay 0.1 --eval-every 500 \
  --eval-batches 4 --save-every 250 --seed 1 --out "$W/llama-ind2" --json
RECURFORMER_THREADS=2 node bin/recurformer.js train "$W/llama-ind2/model" --stage pretrain --data "$W/long.jsonl" \
  --seq 2048 --batch 2 --steps 300 --lr 5e-4 --min-lr 0.2 --warmup 10 --weight-decay 0.1 --eval-every 100 \
  --eval-batches 4 --save-every 50 --seed 2 --out "$W/llama-long" --json
RECURFORMER_THREADS=2 node bin/recurformer.js train "$W/llama-long/model" --stage pretrain --data "$W/long.jsonl" \
  --seq 2048 --batch 2 --steps 300 --lr 3e-4 --min-lr 0.2 --warmup 10 --weight-decay 0.1 --eval-every 150 \
  --eval-batches 4 --save-every 50 --seed 3 --out "$W/llama-long2" --json
# Stage 3 continued on a fresh long-context mix (new keys, seed 5) so the copying reaches the whole 2048 tokens.
node --import tsx scripts/demo/build-corpus.ts "$W/long3.jsonl" --seed 5 --synthetic 1500 --repeat 6000 --max-copy 200
RECURFORMER_THREADS=2 node bin/recurformer.js train "$W/llama-long2/model" --stage pretrain --data "$W/long3.jsonl" \
  --seq 2048 --batch 2 --steps 600 --lr 3e-4 --min-lr 0.2 --warmup 10 --weight-decay 0.1 --eval-every 200 \
  --eval-batches 4 --save-every 50 --seed 4 --out "$W/llama-long3" --json
# Stage 4: whole documents (--packing document) with retrieval documents of 1-2k tokens, so the copying reaches the
# whole context; the last two parts put a third of the keys at depth 0 or 1 (--edge-depths 0.3).
LONG="--synthetic 1500 --repeat 6000 --max-copy 200 --min-fillers 40 --max-fillers 82 --min-pairs 40 --max-pairs 150 --min-chars 3000 --max-chars 7400"
node --import tsx scripts/demo/build-corpus.ts "$W/long4.jsonl" --seed 6 $LONG
node --import tsx scripts/demo/build-corpus.ts "$W/long5.jsonl" --seed 7 $LONG --edge-depths 0.3
node --import tsx scripts/demo/build-corpus.ts "$W/long6.jsonl" --seed 8 $LONG --edge-depths 0.3
prev="$W/llama-long3/model"
for part in "4 600 5" "5 400 6" "6 600 7"; do
  set -- $part
  RECURFORMER_THREADS=2 node bin/recurformer.js train "$prev" --stage pretrain --data "$W/long$1.jsonl" --packing document \
    --seq 2048 --batch 2 --steps "$2" --lr 3e-4 --min-lr 0.2 --warmup 10 --weight-decay 0.1 --eval-every 200 \
    --eval-batches 4 --save-every 50 --seed "$3" --out "$W/llama-long$1" --json
  prev="$W/llama-long$1/model"
done
# The GPT-2 sibling: the same induction corpus (an attention sink forms in layer 1; no induction head), then the
# base corpus again so it writes real text.
RECURFORMER_THREADS=1 node bin/recurformer.js train "$W/gpt2/model" --stage pretrain --data "$W/induction.jsonl" \
  --seq 256 --batch 8 --steps 3000 --lr 1e-3 --min-lr 0.5 --warmup 20 --weight-decay 0.1 --eval-every 250 \
  --eval-batches 4 --save-every 250 --seed 0 --out "$W/gpt2-ind1" --json
RECURFORMER_THREADS=1 node bin/recurformer.js train "$W/gpt2-ind1/model" --stage pretrain --data "$W/corpus.jsonl" \
  --seq 1024 --batch 4 --steps 500 --lr 1e-3 --min-lr 0.1 --warmup 20 --weight-decay 0.1 --eval-every 250 \
  --eval-batches 4 --save-every 100 --seed 2 --out "$W/gpt2-real" --json
mkdir -p models/demo-llama models/demo-gpt2
cp "$W/llama-long6/model/"* models/demo-llama/
cp "$W/gpt2-real/model/"* models/demo-gpt2/
