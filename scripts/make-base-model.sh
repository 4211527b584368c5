#!/bin/sh
# Regenerates the embedded base model, testdata/base-model, from nothing but
# the purpcode binary: the toy red-team world (fixed seed) -> a byte-level BPE
# tokenizer trained on its corpus -> a tiny Qwen2 initialised from a seed ->
# "pretraining" by SFT on the world's chat corpus (loss on every assistant
# turn, so answers after a rule-context system prompt are learned too).
#
# Every step is a pure function of its seed; the SFT trainer is deterministic
# for a fixed thread count, so threads are pinned here (PURPCODE_THREADS and
# OpenBLAS's). Usage: scripts/make-base-model.sh [BIN] (default bin/purpcode).
# WORK (default: a fresh temporary dir, removed at the end) holds the
# intermediate files; OUT (default testdata/base-model) receives the model.
# An existing OUT/README.md is kept.
set -eu

BIN=${1:-bin/purpcode}
OUT=${OUT:-testdata/base-model}
THREADS=2

# World and tokenizer. The corpus mix: without a system prompt most coding
# answers are insecure (INSECURE_FRAC) and most malicious requests are
# answered (synth's default refuse fraction, 0.15), like a real base model;
# with the rule context (SYSTEM_FRAC of the conversations) most are secure /
# refused. Half the conversations carry it, so the model sees the secure
# implementation of every template about as often as the insecure one and
# can write both (the functional pass rate after distillation depends on it).
# The corpus also covers the held-out templates with fresh instances (never a
# held-out prompt): post-training never sees them, the base model has.
# The held-out prompts depend on SEED only, not on the corpus flags.
# CORPUS_WORLDS (default 1) decontaminates the corpus against the test
# prompts of worlds SEED .. SEED+CORPUS_WORLDS-1 as well: one base model for
# a sweep over those worlds (scripts/make-sweep-base-model.sh).
SEED=1
CORPUS_WORLDS=${CORPUS_WORLDS:-1}
CORPUS_SIZE=6000
SYSTEM_FRAC=0.5
INSECURE_FRAC=0.9
VOCAB=1536

# Model: ~0.94M parameters (F32: 3.7 MB), context for a rule-context prompt
# (<= ~400 tokens) plus the answer.
HIDDEN=128
INTERMEDIATE=352
LAYERS=4
HEADS=4
KV_HEADS=2
MAX_POS=640

# Pretraining schedule.
EPOCHS=3
LR=3e-3
WARMUP=30
SEQ_LEN=512
MICRO_BATCH=8

if [ ! -x "$BIN" ]; then
	echo "make-base-model: $BIN not found or not executable; run 'make build' first" >&2
	exit 1
fi
cleanup=
if [ -z "${WORK:-}" ]; then
	WORK=$(mktemp -d)
	cleanup=1
fi
trap '[ -n "$cleanup" ] && rm -rf "$WORK"' EXIT
mkdir -p "$WORK"
start=$(date +%s)

"$BIN" synth --out "$WORK/world" --seed "$SEED" --corpus-worlds "$CORPUS_WORLDS" --corpus-size "$CORPUS_SIZE" --system-frac "$SYSTEM_FRAC" \
	--insecure-frac "$INSECURE_FRAC"

"$BIN" train-tokenizer --corpus "$WORK/world/corpus.txt" --vocab "$VOCAB" --out "$WORK/tokenizer" \
	--model-max-length "$MAX_POS"

# Special tokens come last, in the order <|endoftext|>, <|im_start|>, <|im_end|>.
ENDOFTEXT=$((VOCAB - 3))
IM_END=$((VOCAB - 1))
cat >"$WORK/config.json" <<EOF
{
  "architectures": ["Qwen2ForCausalLM"],
  "model_type": "qwen2",
  "hidden_size": $HIDDEN,
  "intermediate_size": $INTERMEDIATE,
  "num_hidden_layers": $LAYERS,
  "num_attention_heads": $HEADS,
  "num_key_value_heads": $KV_HEADS,
  "vocab_size": $VOCAB,
  "max_position_embeddings": $MAX_POS,
  "rope_theta": 10000.0,
  "rms_norm_eps": 1e-06,
  "tie_word_embeddings": true,
  "hidden_act": "silu",
  "bos_token_id": $ENDOFTEXT,
  "eos_token_id": $IM_END,
  "initializer_range": 0.02
}
EOF
"$BIN" init --config "$WORK/config.json" --out "$WORK/init" --seed "$SEED"
# The trainer copies the tokenizer files of its base model into every
# checkpoint.
cp "$WORK/tokenizer/tokenizer.json" "$WORK/tokenizer/tokenizer_config.json" \
	"$WORK/tokenizer/generation_config.json" "$WORK/init/"

PURPCODE_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS "$BIN" sft \
	--model "$WORK/init" --data "$WORK/world/corpus.jsonl" --out "$WORK/sft" \
	--train-on all-assistant --pack --seq-len "$SEQ_LEN" --micro-batch "$MICRO_BATCH" --grad-accum 1 \
	--optimizer adamw --lr "$LR" --min-lr-ratio 0.05 --schedule cosine --warmup "$WARMUP" \
	--weight-decay 0.01 --clip 1 --epochs "$EPOCHS" --seed "$SEED" --save-every 0 --keep 1 \
	--threads "$THREADS"

ckpt=$(ls -d "$WORK"/sft/checkpoint-* | sort -t- -k2 -n | tail -n 1)
stage="$OUT.tmp.$$"
rm -rf "$stage"
mkdir -p "$stage"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json; do
	cp "$ckpt/$f" "$stage/$f"
done
if [ -f "$OUT/README.md" ]; then
	cp "$OUT/README.md" "$stage/README.md"
fi
rm -rf "$OUT"
mv "$stage" "$OUT"
end=$(date +%s)
echo "make-base-model: wrote $OUT from $ckpt in $((end - start)) s"
ls -l "$OUT"
