#!/usr/bin/env bash
# Recreates models/demo-llama-hh: demo-llama trained further to learn 1- and 2-hop HashHop with digit hashes
# (src/eval/synthetic.ts says why digits), keeping passkey and needle. Every step is seeded. Each stage is a
# resumable run: if one stops, `recurformer train --resume DIR` continues it exactly. Run from the repository root
# after `npm install`; W defaults to runs/demo-hh.
set -euo pipefail
W=${1:-runs/demo-hh}
mkdir -p "$W"
T="node bin/recurformer.js train"
export RECURFORMER_THREADS=${RECURFORMER_THREADS:-2}
# Stage A (short): the induction mix of demo-llama's stage 2 with its hashhop documents in digits, plus 12,000
# short 1- and 2-hop digit hashhop documents, in sequences of 256 tokens, so the copying learns six-digit keys.
node --import tsx scripts/demo/build-corpus.ts "$W/short.jsonl" --seed 9 --synthetic 2000 --max-fillers 10 \
  --max-pairs 16 --max-chars 1200 --repeat 30000 --max-copy 40 --real 0.2 --hashhop 12000 --hashhop-hops 2 \
  --hashhop-alphabet digits
$T models/demo-llama --stage pretrain --data "$W/short.jsonl" --seq 256 --batch 8 --steps 2000 --lr 1e-3 \
  --min-lr 0.1 --warmup 40 --weight-decay 0.1 --eval-every 250 --eval-batches 4 --save-every 100 --seed 11 \
  --out "$W/short" --json
