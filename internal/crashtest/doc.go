// Package crashtest runs a test's own binary as a subprocess (the standard
// re-exec pattern) and kills it with SIGKILL at a point the child
// announces, so trainers can prove that a run killed at any moment resumes
// to the same numbers.
package crashtest
