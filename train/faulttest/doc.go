// Package faulttest is the shared part of the trainers' kill -9 fault
// tests (train/sft and train/grpo's fault_test.go): a group of rank
// processes, started by crashtest.RunGroup and joined the way
// cmd/purpcode joins one, is killed with SIGKILL again and again at
// randomly drawn points (after a step, or inside a sharded save) and
// resumed each time, and must end with the uninterrupted run's
// checkpoints byte for byte.
//
// It holds what does not depend on the trainer: joining the rank grid,
// drawing the kill plan, running it, and checking the output directory
// after each kill and at the end. The trainer-specific parts (configs,
// metrics rows, scorers) stay in the tests. It is test support: only
// _test.go files import it. It reads no environment itself (only
// cmd/purpcode does, see internal/archtest): the tests pass os.LookupEnv
// and os.Getenv in.
package faulttest
