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
# Llama stage 2: 500 more steps on a retrieval-heavy mix (4,000 documents per retrieval task, shorter ones, 30% of
# the real text): 600 steps had taught the formats but not yet the retrieval (0% passkey).
node --import tsx scripts/demo/build-corpus.ts "$W/retrieval.jsonl" --seed 2 --synthetic 4000 --real 0.3 \
  --max-fillers 50 --max-pairs 100 --max-chars 4000
RECURFORMER_THREADS=2 node bin/recurformer.js train "$W/llama/model" --stage pretrain --data "$W/retrieval.jsonl" \
  --seq 2048 --batch 2 --steps 500 --lr 1e-3 --min-lr 0.1 --warmup 20 --weight-decay 0.1 \
  --eval-every 100 --eval-batches 4 --save-every 50 --seed 1 --out "$W/llama-retr" --json
mkdir -p models/demo-llama models/demo-gpt2
cp "$W/llama-retr/model/"* models/demo-llama/
cp "$W/gpt2/model/"* models/demo-gpt2/
