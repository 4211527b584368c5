package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"purpcode/analyzer"
	"purpcode/oracle"
)

// findingsExit is returned by analyze after printing its report when
// findings at or above the minimum severity remain (exit status 1) or a
// file could not be read or parsed, so it cannot be called clean (exit
// status 2); mainExit prints no extra message.
type findingsExit struct{ findings, unparsed int }

func (e findingsExit) Error() string {
	return fmt.Sprintf("%d findings, %d files failed to parse", e.findings, e.unparsed)
}
func (e findingsExit) ExitCode() int {
	if e.unparsed > 0 {
		return 2
	}
	return 1
}

type jsonFinding struct {
	RuleID    string   `json:"rule_id"`
	CWE       []string `json:"cwe"`
	Severity  string   `json:"severity"`
	Message   string   `json:"message"`
	Line      int      `json:"line"`
	Column    int      `json:"column"`
	EndLine   int      `json:"end_line"`
	EndColumn int      `json:"end_column"`
	Snippet   string   `json:"snippet"`
}

type jsonFile struct {
	File        string        `json:"file"`
	Parsed      bool          `json:"parsed"`
	ParseErrors []string      `json:"parse_errors,omitempty"`
	Findings    []jsonFinding `json:"findings"`
}

type jsonRule struct {
	ID          string   `json:"id"`
	CWE         []string `json:"cwe"`
	Severity    string   `json:"severity"`
	Title       string   `json:"title"`
	Message     string   `json:"message"`
	Fix         string   `json:"fix"`
	Description string   `json:"description"`
}

func runAnalyze(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("analyze", stderr)
	format := fs.String("format", "", "output format: text (file:line: severity rule CWE message), json or sarif (default: text when standard output is a terminal, else json)")
	minSev := fs.String("min-severity", "medium", "report (and fail on) findings of this severity or higher: low, medium or high")
	listRules := fs.Bool("rules", false, "print the rule catalog instead of analysing files")
	benchRefs := fs.String("bench-refs", "", "print recall per CWE on `DIR`/cyberseceval/instruct.json (development set) and the false-positive rate on HumanEval+MBPP reference solutions, at the codesec oracle's severity bar, instead of analysing files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format == "" {
		*format = defaultAnalyzeFormat(stdout)
	}
	if *format != "text" && *format != "json" && *format != "sarif" {
		fmt.Fprintf(stderr, "purpcode analyze: --format %q: want text, json or sarif\n", *format)
		return errUsage
	}
	min, err := analyzer.ParseSeverity(*minSev)
	if err != nil {
		fmt.Fprintf(stderr, "purpcode analyze: -min-severity: %v\n", err)
		return errUsage
	}
	a, err := analyzer.New()
	if err != nil {
		return err
	}
	defer a.Close()
	if *benchRefs != "" {
		m, err := a.Measure(*benchRefs, oracle.DefaultCodeSecOptions().MinSeverity)
		if err != nil {
			return err
		}
		return m.WriteTable(stdout)
	}
	rules := a.Rules()
	if *listRules {
		if *format == "text" {
			return writeRulesText(stdout, rules)
		}
		if *format == "sarif" {
			return writeJSON(stdout, sarifLog(rules, nil))
		}
		out := make([]jsonRule, len(rules))
		for i, r := range rules {
			out[i] = jsonRule{r.ID, r.CWE, r.Severity.String(), r.Title, r.Message, r.Fix, r.Description}
		}
		return writeJSON(stdout, out)
	}

	paths := fs.Args()
	if len(paths) == 0 {
		paths = []string{"-"}
	}
	var files []jsonFile
	var results []fileResult
	total, unparsed := 0, 0
	for _, p := range paths {
		var src []byte
		var err error
		if p == "-" {
			src, err = io.ReadAll(os.Stdin)
		} else {
			src, err = os.ReadFile(p)
		}
		if err != nil {
			fmt.Fprintf(stderr, "purpcode analyze: read %s: %v\n", p, err)
			return findingsExit{unparsed: 1}
		}
		res, err := a.Analyze(src, "python")
		if err != nil {
			return fmt.Errorf("analyze %s: %w", p, err)
		}
		kept := res.AtLeast(min)
		total += len(kept)
		if !res.Parsed {
			unparsed++
		}
		results = append(results, fileResult{p, res, kept})
		jf := jsonFile{File: p, Parsed: res.Parsed, ParseErrors: res.ParseErrors, Findings: []jsonFinding{}}
		for _, f := range kept {
			jf.Findings = append(jf.Findings, jsonFinding{f.RuleID, f.CWE, f.Severity.String(), f.Message, f.Line, f.Column, f.EndLine, f.EndColumn, f.Snippet})
		}
		files = append(files, jf)
	}
	switch *format {
	case "text":
		err = writeFindingsText(stdout, results)
	case "sarif":
		err = writeJSON(stdout, sarifLog(rules, results))
	default:
		err = writeJSON(stdout, map[string]any{
			"files":   files,
			"summary": map[string]int{"files": len(files), "findings": total, "unparsed": unparsed},
		})
	}
	if err != nil {
		return err
	}
	if total > 0 || unparsed > 0 {
		fmt.Fprintf(stderr, "purpcode analyze: %d findings at or above %s; %d of %d files failed to parse\n", total, min, unparsed, len(files))
		return findingsExit{total, unparsed}
	}
	return nil
}

type fileResult struct {
	path string
	res  analyzer.Result
	kept []analyzer.Finding
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// sarifLevel maps severities onto SARIF result levels.
func sarifLevel(s analyzer.Severity) string {
	switch s {
	case analyzer.High:
		return "error"
	case analyzer.Medium:
		return "warning"
	}
	return "note"
}

// sarifSecurityScore is GitHub's security-severity convention (0-10).
func sarifSecurityScore(s analyzer.Severity) string {
	switch s {
	case analyzer.High:
		return "8.0"
	case analyzer.Medium:
		return "5.0"
	}
	return "2.0"
}

// sarifLog builds a SARIF 2.1.0 log with the catalog in tool.driver.rules.
func sarifLog(rules []analyzer.Rule, files []fileResult) map[string]any {
	index := map[string]int{}
	var srules []map[string]any
	for i, r := range rules {
		index[r.ID] = i
		tags := append([]string{"security"}, r.CWE...)
		srules = append(srules, map[string]any{
			"id":                   r.ID,
			"name":                 r.Title,
			"shortDescription":     map[string]string{"text": r.Title},
			"fullDescription":      map[string]string{"text": r.Description},
			"help":                 map[string]string{"text": r.Fix},
			"defaultConfiguration": map[string]string{"level": sarifLevel(r.Severity)},
			"properties": map[string]any{
				"tags": tags, "severity": r.Severity.String(),
				"security-severity": sarifSecurityScore(r.Severity),
			},
		})
	}
	results := []map[string]any{}
	var notes []map[string]any
	var artifacts []map[string]any
	for _, fr := range files {
		uri := fr.path
		if uri == "-" {
			uri = "stdin"
		}
		artifacts = append(artifacts, map[string]any{"location": map[string]string{"uri": uri}})
		for _, f := range fr.kept {
			results = append(results, map[string]any{
				"ruleId":    f.RuleID,
				"ruleIndex": index[f.RuleID],
				"level":     sarifLevel(f.Severity),
				"message":   map[string]string{"text": f.Message},
				"locations": []map[string]any{{
					"physicalLocation": map[string]any{
						"artifactLocation": map[string]string{"uri": uri},
						"region": map[string]any{
							"startLine": f.Line, "startColumn": f.Column,
							"endLine": f.EndLine, "endColumn": f.EndColumn,
							"snippet": map[string]string{"text": f.Snippet},
						},
					},
				}},
				"properties": map[string]any{"cwe": f.CWE, "severity": f.Severity.String()},
			})
		}
		for _, e := range fr.res.ParseErrors {
			notes = append(notes, map[string]any{
				"level":   "error",
				"message": map[string]string{"text": uri + ": " + e},
			})
		}
	}
	inv := map[string]any{"executionSuccessful": true}
	if len(notes) > 0 {
		inv["toolExecutionNotifications"] = notes
	}
	run := map[string]any{
		"tool": map[string]any{"driver": map[string]any{
			"name":           "purpcode-analyzer",
			"version":        version,
			"informationUri": "https://cwe.mitre.org/",
			"rules":          srules,
		}},
		"results":     results,
		"invocations": []map[string]any{inv},
	}
	if len(artifacts) > 0 {
		run["artifacts"] = artifacts
	}
	return map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs":    []map[string]any{run},
	}
}
