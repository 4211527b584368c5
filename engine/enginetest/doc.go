// Package enginetest holds test support for code that handles engine
// tensors: Liveness counts how many tensors a test has seen are still
// reachable, to prove that a streaming path holds one at a time.
package enginetest
