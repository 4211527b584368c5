// Package recipe runs the whole PurpCode recipe on one base model: the toy
// red-team world, rule learning by context distillation, SFT, GRPO, and the
// evaluation of every stage, with its report; and a sweep of it over
// several worlds.
//
// Held-out protocol. The world splits templates three ways. The tuning
// stages (distillation, SFT, RL, and the validation evaluations that
// knobs are chosen on) receive a Tuning value that holds the train and
// validation files only. The test rows are written to their own file
// after tuning has finished and are read by the final evaluation alone,
// which reports ground-truth metrics computed without the reward's code
// (package eval) and, beside them, the mean reward per stage.
//
// Resuming. Each stage writes a completion marker, done/<stage>.json,
// atomically after its outputs; it holds what later stages need of it (a
// checkpoint path, an evaluation's numbers). A run stopped by its context
// returns an *InterruptedError naming the stage; Options.Resume skips the
// stages with markers, continues SFT and RL from their last checkpoint
// (the trainers save one when interrupted) and runs any other unfinished
// stage again. Nothing a stage computes depends on whether it was resumed,
// so a resumed run ends with the same tables as an uninterrupted one.
package recipe
