// Command testsummary runs `go test -json ...` and prints what plain
// `go test` would (each package's closing ok/FAIL line, the output of
// failing tests, build errors), followed by one line saying which tests
// were skipped and why, so that `make test` tells its user what it did not
// test without -v:
//
//	not tested: 17 tests skipped (17: ../shared/refs missing)
//
// Skips written by internal/testref.Missing are grouped by what is missing;
// other skips are counted and named. It exits with go test's exit status.
//
// Usage: go run ./internal/testsummary go test -json [flags] [packages]
package main
