// Package crashtest runs a test's own binary as a subprocess (the standard
// re-exec pattern) and kills it with SIGKILL at a point the child
// announces, so trainers can prove that a run killed at any moment resumes
// to the same numbers. RunGroup does the same for the ranks of a
// multi-process group: the first rank to reach its kill point takes every
// rank down with it, wherever the others are (mid-step, mid-save, blocked
// in a collective).
package crashtest
