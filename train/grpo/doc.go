// Package grpo is the RL stage of the PurpCode recipe: Group Relative
// Policy Optimisation over prompts that each carry one oracle, sampling
// from the same in-process weights it updates, with single-step dynamic
// sampling. The loss and its exact terms are documented in loss.go.
//
// A run is one process or one rank of a TP×DP group (Options.TP,
// Options.DP): the tensor-parallel ranks of a replica roll out and train
// on the shards of one policy in lockstep, the replicas split each step's
// prompts and packed rows; tp.go says how they stay in agreement.
package grpo
