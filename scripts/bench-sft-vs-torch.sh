#!/bin/sh
# Side-by-side SFT step throughput on this machine, in one run: purpcode's
# training step (forward, backward, clip, AdamW) and bench/torch_sft.py doing
# the same step in PyTorch, same shape (the `make bench` model, batch 4 x 256),
# same thread count. Prints both and the ratio. PyTorch is Debian's
# python3-torch under /usr/bin/python3; without it the script says so.
# Usage: scripts/bench-sft-vs-torch.sh [BIN] (default bin/purpcode)
set -eu
BIN=${1:-bin/purpcode}
THREADS=${THREADS:-$(nproc)}
STEPS=${STEPS:-3}
PY=${PYTHON:-/usr/bin/python3}

go_json=$("$BIN" bench --device cpu --shape bench --batch 4 --seq 256 --steps "$STEPS" --decode-tokens 2 --threads "$THREADS" --json)
go_tps=$(printf '%s' "$go_json" | sed -n 's/.*"train_tokens_per_s":\([0-9.e+-]*\).*/\1/p')
echo "purpcode: $go_tps tokens/s ($THREADS threads)"
if ! "$PY" -c 'import torch' 2>/dev/null; then
	echo "pytorch: not importable by $PY (Debian: apt-get install python3-torch); no ratio"
	exit 0
fi
torch_json=$("$PY" bench/torch_sft.py --steps "$STEPS" --threads "$THREADS")
torch_tps=$(printf '%s' "$torch_json" | sed -n 's/.*"tokens_per_s": *\([0-9.e+-]*\).*/\1/p')
echo "pytorch:  $torch_tps tokens/s ($THREADS threads)"
awk -v a="$go_tps" -v b="$torch_tps" 'BEGIN { printf "ratio purpcode/pytorch: %.2fx\n", a / b }'
