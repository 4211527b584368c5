package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"purpcode/analyzer"
)

// defaultAnalyzeFormat is text for a person at a terminal and JSON for a
// pipe or file, where a program reads it.
func defaultAnalyzeFormat(stdout io.Writer) string {
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return "text"
	}
	return "json"
}

// writeFindingsText prints one line per finding, "file:line: severity
// rule CWE message" (the form editors and grep users expect), and one per
// parse error.
func writeFindingsText(w io.Writer, files []fileResult) error {
	bw := bufio.NewWriter(w)
	for _, fr := range files {
		name := fr.path
		if name == "-" {
			name = "stdin"
		}
		for _, e := range fr.res.ParseErrors {
			fmt.Fprintf(bw, "%s: could not parse: %s\n", name, e)
		}
		for _, f := range fr.kept {
			fmt.Fprintf(bw, "%s:%d: %s %s %s %s\n", name, f.Line, f.Severity, f.RuleID, cweList(f.CWE), f.Message)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// writeRulesText prints the rule catalog, one rule a line.
func writeRulesText(w io.Writer, rules []analyzer.Rule) error {
	bw := bufio.NewWriter(w)
	for _, r := range rules {
		fmt.Fprintf(bw, "%-32s %-6s %-16s %s\n", r.ID, r.Severity, cweList(r.CWE), r.Title)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func cweList(cwe []string) string {
	if len(cwe) == 0 {
		return "-"
	}
	return strings.Join(cwe, ",")
}
