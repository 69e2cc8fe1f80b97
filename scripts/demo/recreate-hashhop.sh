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
# Stages B-F: whole documents up to the context (--packing document), each on a fresh mix with new keys: demo-llama's
# last-stage mix (passkey and needle documents of 1-2k tokens, a third of the keys at the edges) with its hashhop
# documents in digits, plus DOCS 1- and 2-hop hashhop documents of MIN to MAX pairs (10 pairs are about 190 tokens,
# 115 about 2,000) asking QUERIES chains each, one answered query after another.
#   long_stage NAME CORPUS_SEED MIN MAX DOCS QUERIES FROM STEPS LR EVAL_EVERY TRAIN_SEED
long_stage() {
  local name=$1 cseed=$2 min=$3 max=$4 docs=$5 queries=$6 from=$7 steps=$8 lr=$9 every=${10} seed=${11}
  node --import tsx scripts/demo/build-corpus.ts "$W/$name.jsonl" --seed "$cseed" --synthetic 1500 --repeat 3000 \
    --max-copy 200 --min-fillers 40 --max-fillers 82 --min-pairs "$min" --max-pairs "$max" --min-chars 3000 \
    --max-chars 7400 --edge-depths 0.3 --hashhop "$docs" --hashhop-hops 2 --hashhop-alphabet digits --hashhop-queries "$queries"
  $T "$W/$from/model" --stage pretrain --data "$W/$name.jsonl" --packing document --seq 2048 --batch 2 --steps "$steps" \
    --lr "$lr" --min-lr 0.2 --warmup 10 --weight-decay 0.1 --eval-every "$every" --eval-batches 4 --save-every 50 \
    --seed "$seed" --out "$W/$name" --json
}
# B (long): one query a document, so the copying of hashes reaches the context.
long_stage long 10 10 115 4000 1 short 600 5e-4 200 12
# C: 8 chains a document: a 2,000-token document with one query teaches retrieval through its last dozen tokens
# only (after stage B: 1-hop 4/8, 4/8, 0/8 at 256 / 1024 / 2000 tokens).
long_stage long-q8 13 10 115 4000 8 long 600 5e-4 200 13
# D: 5,000 documents of 30 to 115 pairs, the long ones being what is still missed (after stage C: 1-hop 6/8, 7/8,
# 2/8 and 2-hop 7/8, 5/8, 0/8 at 256 / 1024 / 2000 tokens).
long_stage long-d 14 30 115 5000 8 long-q8 600 4e-4 200 14
# E: only long documents (70 to 118 pairs, about 1,200 to 2,000 tokens), 16 chains each (after stage D: 1-hop 6/8,
# 7/8, 3/8 and 2-hop 6/8, 5/8, 1/8).
long_stage long-e 15 70 118 5000 16 long-d 600 4e-4 200 15
# F: documents of every length again (10 to 118 pairs, 16 chains each), at a lower learning rate, 300 steps: stage
# E's long documents alone had cost the short prompts (after it: 1-hop 4/8, 7/8, 5/8 and 2-hop 1/8, 6/8, 2/8).
long_stage long-f 16 10 118 5000 16 long-e 300 2e-4 100 16
# the committed weights (F16; models/demo-llama-hh/SOURCE.md is written by hand)
node bin/recurformer.js export "$W/long-f/model" --dtype F16 --out models/demo-llama-hh
