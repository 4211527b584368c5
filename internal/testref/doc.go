// Package testref is test support for what some tests need from the
// machine rather than from the repository: the shared reference data
// (../shared/refs beside the repository), OpenBLAS and the bubblewrap
// sandbox with python3.
//
// When one is absent a test calls Missing (or Dir, File, Sandbox, which
// call it), and Missing decides for every package alike: a developer's
// machine skips with a message naming what is missing (a user's fresh
// clone has no shared folder), while CI (the environment variable CI set
// to true, as CI services do) fails, so CI cannot pass by testing less.
//
// Missing reads CI itself, instead of a test flag like kernels'
// -nvrtc-required, because `go test ./...` hands a flag to every test
// binary and a binary that does not define it refuses to start; the
// environment reaches every binary and, being read through os.Getenv, is
// part of go test's cache key. internal/archtest lets this package (test
// plumbing, imported only by tests) read the environment for that reason.
//
// Skip messages start with SkipPrefix and the name of the need, so
// internal/testsummary can tell `make test`'s user what was not tested.
package testref
