#!/usr/bin/env bash
# Recreates the two demo models committed under models/ (about 1.5 h on 2 cores).
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
mkdir -p models/demo-llama models/demo-gpt2
cp "$W/llama/model/"* models/demo-llama/
cp "$W/gpt2/model/"* models/demo-gpt2/
