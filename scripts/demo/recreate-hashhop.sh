#!/usr/bin/env bash
# Recreates models/demo-llama-hh: demo-llama trained further to learn 1- and 2-hop HashHop with digit hashes
# (src/eval/synthetic.ts says why digits), keeping passkey and needle. Every step is seeded. Each stage is a
# resumable run: if one stops, `recurformer train --resume DIR` continues it exactly. Run from the repository root
# after `npm install`; W defaults to runs/demo-hh. About two hours on two cores.
set -euo pipefail
W=${1:-runs/demo-hh}
mkdir -p "$W"
T="node bin/recurformer.js train"
npx tsc -p tsconfig.json
export RECURFORMER_THREADS=${RECURFORMER_THREADS:-2}
# Stage A (short): the induction mix of demo-llama's stage 2 with its hashhop documents in digits, plus 12,000
# short 1- and 2-hop digit hashhop documents, in sequences of 256 tokens, so the copying learns six-digit keys.
node --import tsx scripts/demo/build-corpus.ts "$W/short.jsonl" --seed 9 --synthetic 2000 --max-fillers 10 \
  --max-pairs 16 --max-chars 1200 --repeat 30000 --max-copy 40 --real 0.2 --hashhop 12000 --hashhop-hops 2 \
  --hashhop-alphabet digits
$T models/demo-llama --stage pretrain --data "$W/short.jsonl" --seq 256 --batch 8 --steps 2000 --lr 1e-3 \
  --min-lr 0.1 --warmup 40 --weight-decay 0.1 --eval-every 250 --eval-batches 4 --save-every 100 --seed 11 \
  --out "$W/short" --json
# Stage B (long): whole documents up to the context (--packing document), demo-llama's last-stage mix (passkey and
# needle documents of 1-2k tokens, a third of the keys at the edges) with its hashhop documents in digits and 4,000
# more 1- and 2-hop ones of 10 to 115 pairs (about 190 to 2,000 tokens), so the copying of hashes reaches the context.
node --import tsx scripts/demo/build-corpus.ts "$W/long.jsonl" --seed 10 --synthetic 1500 --repeat 3000 --max-copy 200 \
  --min-fillers 40 --max-fillers 82 --min-pairs 10 --max-pairs 115 --min-chars 3000 --max-chars 7400 --edge-depths 0.3 \
  --hashhop 4000 --hashhop-hops 2 --hashhop-alphabet digits
$T "$W/short/model" --stage pretrain --data "$W/long.jsonl" --packing document --seq 2048 --batch 2 --steps 600 \
  --lr 5e-4 --min-lr 0.2 --warmup 10 --weight-decay 0.1 --eval-every 200 --eval-batches 4 --save-every 50 --seed 12 \
  --out "$W/long" --json
# Stage C: the same mix with fresh keys, where each of the 4,000 added hashhop documents asks for 8 chains, one
# answered query after another (--hashhop-queries 8): a 2,000-token document otherwise teaches retrieval through its
# last dozen tokens only (after stage B: 1-hop 4/8, 4/8, 0/8 at 256 / 1024 / 2000 tokens).
node --import tsx scripts/demo/build-corpus.ts "$W/long-q8.jsonl" --seed 13 --synthetic 1500 --repeat 3000 --max-copy 200 \
  --min-fillers 40 --max-fillers 82 --min-pairs 10 --max-pairs 115 --min-chars 3000 --max-chars 7400 --edge-depths 0.3 \
  --hashhop 4000 --hashhop-hops 2 --hashhop-alphabet digits --hashhop-queries 8
$T "$W/long/model" --stage pretrain --data "$W/long-q8.jsonl" --packing document --seq 2048 --batch 2 --steps 600 \
  --lr 5e-4 --min-lr 0.2 --warmup 10 --weight-decay 0.1 --eval-every 200 --eval-batches 4 --save-every 50 --seed 13 \
  --out "$W/long-q8" --json
# Stage D: fresh keys again, hashhop documents of 30 to 115 pairs (the long ones are what is still missed: after
# stage C, 1-hop 6/8, 7/8, 2/8 and 2-hop 7/8, 5/8, 0/8 at 256 / 1024 / 2000 tokens), 5,000 of them.
node --import tsx scripts/demo/build-corpus.ts "$W/long-d.jsonl" --seed 14 --synthetic 1500 --repeat 3000 --max-copy 200 \
  --min-fillers 40 --max-fillers 82 --min-pairs 30 --max-pairs 115 --min-chars 3000 --max-chars 7400 --edge-depths 0.3 \
  --hashhop 5000 --hashhop-hops 2 --hashhop-alphabet digits --hashhop-queries 8
$T "$W/long-q8/model" --stage pretrain --data "$W/long-d.jsonl" --packing document --seq 2048 --batch 2 --steps 600 \
  --lr 4e-4 --min-lr 0.2 --warmup 10 --weight-decay 0.1 --eval-every 200 --eval-batches 4 --save-every 50 --seed 14 \
  --out "$W/long-d" --json
# Stage E: fresh keys, only long hashhop documents (70 to 118 pairs, about 1,200 to 2,000 tokens) asking 16 chains
# each (after stage D: 1-hop 6/8, 7/8, 3/8 and 2-hop 6/8, 5/8, 1/8 at 256 / 1024 / 2000 tokens).
node --import tsx scripts/demo/build-corpus.ts "$W/long-e.jsonl" --seed 15 --synthetic 1500 --repeat 3000 --max-copy 200 \
  --min-fillers 40 --max-fillers 82 --min-pairs 70 --max-pairs 118 --min-chars 3000 --max-chars 7400 --edge-depths 0.3 \
  --hashhop 5000 --hashhop-hops 2 --hashhop-alphabet digits --hashhop-queries 16
$T "$W/long-d/model" --stage pretrain --data "$W/long-e.jsonl" --packing document --seq 2048 --batch 2 --steps 600 \
  --lr 4e-4 --min-lr 0.2 --warmup 10 --weight-decay 0.1 --eval-every 200 --eval-batches 4 --save-every 50 --seed 15 \
  --out "$W/long-e" --json
# Stage F: hashhop documents of every length again (10 to 118 pairs, 16 chains each), at a lower learning rate, 300
# steps: stage E's long documents alone had cost the short prompts (after it: 1-hop 4/8, 7/8, 5/8 and 2-hop 1/8,
# 6/8, 2/8 at 256 / 1024 / 2000 tokens).
node --import tsx scripts/demo/build-corpus.ts "$W/long-f.jsonl" --seed 16 --synthetic 1500 --repeat 3000 --max-copy 200 \
  --min-fillers 40 --max-fillers 82 --min-pairs 10 --max-pairs 118 --min-chars 3000 --max-chars 7400 --edge-depths 0.3 \
  --hashhop 5000 --hashhop-hops 2 --hashhop-alphabet digits --hashhop-queries 16
$T "$W/long-e/model" --stage pretrain --data "$W/long-f.jsonl" --packing document --seq 2048 --batch 2 --steps 300 \
  --lr 2e-4 --min-lr 0.2 --warmup 10 --weight-decay 0.1 --eval-every 100 --eval-batches 4 --save-every 50 --seed 16 \
  --out "$W/long-f" --json
# the committed weights (F16; models/demo-llama-hh/SOURCE.md is written by hand)
node bin/recurformer.js export "$W/long-f/model" --dtype F16 --out models/demo-llama-hh
