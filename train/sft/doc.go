// Package sft is the supervised fine-tuning trainer (the rule-learning
// stage): it loads a Hugging Face Qwen2 model and JSONL data (see package
// data for formats and the error/skip policy), runs micro-batches with
// gradient accumulation on the CPU engine, steps an optimizer, evaluates,
// writes metrics.jsonl and checkpoints, and resumes from the newest
// checkpoint to the same numbers an uninterrupted run gives.
//
// Loss normalisation follows the token-mean convention over the whole
// optimizer step: the target tokens of all micro-batches of the step are
// counted first, every micro-batch's gradient is scaled by 1/total, and the
// reported loss is the summed token loss over total. A step over 4
// micro-batches of 2 rows therefore equals one batch of the same 8 rows.
//
// Steps. With max_steps 0 the run makes `epochs` passes; each pass is
// shuffled with a seed drawn from the run's generator, cut into (packed)
// sequences and micro-batches, and grouped grad_accum micro-batches per
// optimizer step (an epoch's last step may have fewer; epochs never share a
// step). With max_steps > 0 passes repeat until that many steps are done.
// The learning rate schedule follows transformers' (see optim.Schedule).
//
// Output directory. metrics.jsonl starts with a data event row
// {"step":0,"event":"data","train":{...},"eval":{...}} holding the load
// statistics (rows kept, truncated, skipped by reason), then one Metrics row
// per optimizer step. checkpoint-STEP/ holds the model in float32 with
// config.json and the base model's tokenizer files, plus training_state/
// (package train) with the AdamW moments per parameter ("exp_avg/<name>",
// "exp_avg_sq/<name>"; "momentum_buffer/<name>" for SGD with momentum).
// Checkpoints are written every save_every steps and at the end; keep-N
// prunes the oldest after a new one is complete. A run refuses an output
// directory that already holds a run unless resume is set; resuming checks
// that every setting that shapes the numbers is unchanged (naming the ones
// that differ), truncates metrics.jsonl back to the checkpoint's step and
// restores weights, optimizer state, step, data position and RNG state.
// Data and model errors are reported before the output directory is touched.
//
// Many ranks (Options.DP, Options.TP; see train.Group). With tensor
// parallelism each rank loads and trains only its shard of the model
// (Megatron layout, train.TPSplit): the ranks of a replica run the same
// micro-batches with the model's collectives, and their gradients are
// already exact slices of the replica's after Backward, so only the
// data-parallel replicas sum theirs, and clipping uses the whole model's
// norm over the TP group. Checkpoints are then sharded (Policy.SaveGroup):
// replica 0's ranks each write their shard and the leader a manifest.
// Interrupts and failures are agreed on by every rank of the world before
// each step, so all stop at the same step and save it together.
package sft
