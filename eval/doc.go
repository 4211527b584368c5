// Package eval measures a model on prompt suites with the in-process
// oracles: insecure-code rate (analyzer), functional pass rate (sandboxed
// tests), malicious-request refusal rate and benign over-refusal rate
// (judge), and writes reports (Markdown and PNG plots).
package eval
