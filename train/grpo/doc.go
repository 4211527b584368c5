// Package grpo is the RL stage of the PurpCode recipe: Group Relative
// Policy Optimisation over prompts that each carry one oracle, sampling
// from the same in-process weights it updates, with single-step dynamic
// sampling. The loss and its exact terms are documented in loss.go.
package grpo
