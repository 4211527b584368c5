#!/bin/sh
# Regenerates testdata/base-model-sweep, the base model of `make sweep`:
# scripts/make-base-model.sh with the same seed, corpus mix, tokenizer,
# model and schedule, except that the corpus is decontaminated against the
# test prompts of all five sweep worlds (seeds 1-5), not world 1's only.
# The corpus still draws fresh instances of every template (each world's
# train and validation templates are some other world's test templates), but
# none of the 5 x 152 test prompts verbatim. Deterministic (2 pinned
# threads); ~15 min on 2 cores. Usage: scripts/make-sweep-base-model.sh [BIN].
set -eu
CORPUS_WORLDS=5 OUT=${OUT:-testdata/base-model-sweep} exec sh "$(dirname "$0")/make-base-model.sh" "${1:-bin/purpcode}"
