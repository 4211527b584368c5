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
package recipe
