// Package archtest holds no code: its test enforces the repository's
// architecture rules from design.md (import direction, the single cgo
// package, one doc.go per package, environment variables read only by the
// command, device memory touched only by the backends).
package archtest
