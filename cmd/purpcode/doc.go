// Command purpcode runs the PurpCode recipe: red-team data, rule learning by
// context distillation, SFT, GRPO with in-process oracles, evaluation and
// benchmarks, on CPU or CUDA, from one binary.
//
// One file per subcommand. This is the only package that reads environment
// variables; everything below it takes explicit options.
package main
