// Package analyzer is purpcode's static security analyzer for generated
// code. It parses Python with tree-sitter and runs a data-driven rule
// catalog (rules.yaml, embedded): call sinks resolved through imports and
// aliases, attribute and string patterns, assignments of literals to
// secret-looking names, tree-sitter queries, resource-release checks, and
// simple intra-function taint tracking from parameters and user input
// (input(), request.*, sys.argv) to sinks. Findings carry CWE ids and a
// severity; the codesec oracle scores a response by its most severe one.
//
// Code that does not parse is reported with Parsed=false and the error
// positions; fragments are still analysed after simple repairs (dedent,
// an unterminated leading docstring), so their findings are not lost.
//
// An Analyzer is safe for concurrent use.
package analyzer
