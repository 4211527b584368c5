// Package analyzer is purpcode's static security analyzer for generated
// code. It parses Python with tree-sitter and runs a data-driven rule
// catalog (rules.yaml, embedded): call sinks resolved through imports and
// aliases, attribute and string patterns, assignments of literals to
// secret-looking names, strings built at run time (f-strings, +, %,
// format) around constant markup, tree-sitter queries, resource-release
// checks, and intra-function taint tracking to sinks.
//
// Taint sources are a function's parameters (generated code receives its
// untrusted data that way: def handler(user_path): ...) and user input
// (input(), request.*, sys.argv); sanitizers (shlex.quote, html.escape,
// re.escape, int, ...) clear it, and so do guards: a name checked in some
// condition of the function by an allow-list test (x in ALLOWED), a
// comparison with a constant, or a check such as startswith after
// realpath, is validated throughout the function, together with the names
// it was computed from. Findings carry CWE ids and a severity; the codesec
// oracle scores a response by its findings of medium and higher.
//
// Measure reports recall per CWE on CyberSecEval's instruct.json Python
// rows (a development set: the rules were written against it) and the
// false-positive rate on HumanEval and MBPP reference solutions, at a
// given severity bar; `purpcode analyze -bench-refs DIR` prints it at the
// oracle's bar.
//
// Code that does not parse is reported with Parsed=false and the error
// positions; fragments are still analysed after simple repairs (dedent,
// closing a docstring the fragment starts or ends inside, closing the
// brackets of a truncated call), so their findings are not lost.
//
// An Analyzer is safe for concurrent use.
package analyzer
