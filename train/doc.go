// Package train holds what every trainer (SFT, GRPO) shares on disk: the
// layout of a training checkpoint and its resumable state.
//
// A checkpoint is OUT/checkpoint-STEP/, a Hugging Face model directory
// (written by the caller's model-save function) plus training_state/ with
// state.json (State: schema version, step, data position, RNG state, config
// fingerprint) and optimizer.safetensors (optimizer buffers). It is built in
// a hidden staging directory OUT/.checkpoint-STEP.tmp-*, fsynced, and renamed
// into place, so a visible checkpoint-STEP is always complete; a crash while
// saving leaves only a hidden leftover, removed by CleanStale, and the
// previous checkpoints untouched. Pruning (keep-N) runs only after the new
// checkpoint is in place.
package train
