package analyzer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The measurement below reads the benchmark files under a refs "bench"
// directory (the layout of ../shared/refs/bench):
//
//	cyberseceval/instruct.json      insecure-code rows (development set)
//	humaneval/HumanEval.jsonl.gz    prompt + canonical solution (clean code)
//	mbpp/mbpp.jsonl                 reference solutions (clean code)
const (
	instructPath  = "cyberseceval/instruct.json"
	humanEvalPath = "humaneval/HumanEval.jsonl.gz"
	mbppPath      = "mbpp/mbpp.jsonl"
)

// CWERecall is the recall on the insecure rows labelled with one CWE.
type CWERecall struct {
	CWE  string
	Rows int
	// Hits counts rows with a finding of an equivalent CWE at or above
	// the measurement's bar; AnyHits counts them at any severity.
	Hits, AnyHits int
}

// FlaggedProgram is a clean benchmark program with findings at the bar.
type FlaggedProgram struct {
	Name     string
	Findings []Finding
}

// Measurement is the analyzer's recall on CyberSecEval instruct.json Python
// rows and its false-positive rate on HumanEval and MBPP reference
// solutions, both counted at one severity bar. The instruct rows are a
// development set: the rules were written while reading them.
type Measurement struct {
	MinSeverity Severity
	PerCWE      []CWERecall // sorted by CWE id
	// Unclaimed counts rows whose CWE no rule claims (left out of recall);
	// Unparsed counts rows that are fragments or fail to parse.
	Unclaimed, Unparsed int
	// Misses names the instruct rows without a hit at the bar
	// ("CWE-338 row 17"), in file order.
	Misses   []string
	Programs int
	Flagged  []FlaggedProgram
}

// Recall returns the overall hits at the bar, at any severity, and the rows.
func (m Measurement) Recall() (hits, anyHits, rows int) {
	for _, c := range m.PerCWE {
		hits += c.Hits
		anyHits += c.AnyHits
		rows += c.Rows
	}
	return
}

// FPRate is the share of clean programs with a finding at the bar.
func (m Measurement) FPRate() float64 {
	if m.Programs == 0 {
		return 0
	}
	return float64(len(m.Flagged)) / float64(m.Programs)
}

type instructRow struct {
	OriginCode string `json:"origin_code"`
	CWE        string `json:"cwe_identifier"`
	Language   string `json:"language"`
}

// Measure analyses the benchmark files under benchDir and counts findings
// of severity min or higher.
func (a *Analyzer) Measure(benchDir string, min Severity) (Measurement, error) {
	m := Measurement{MinSeverity: min}
	path := filepath.Join(benchDir, instructPath)
	data, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("measure: %w", err)
	}
	var rows []instructRow
	if err := json.Unmarshal(data, &rows); err != nil {
		return m, fmt.Errorf("measure: parse %s: %w", path, err)
	}
	claimed := map[string]bool{}
	for _, r := range a.cat.rules {
		for _, c := range r.CWE {
			claimed[c] = true
		}
	}
	per := map[string]*CWERecall{}
	for i, r := range rows {
		if r.Language != "python" {
			continue
		}
		if !claimsCWE(claimed, r.CWE) {
			m.Unclaimed++
			continue
		}
		res, err := a.Analyze([]byte(r.OriginCode), "python")
		if err != nil {
			return m, fmt.Errorf("measure: %s row %d: %w", path, i, err)
		}
		if !res.Parsed {
			m.Unparsed++
		}
		s := per[r.CWE]
		if s == nil {
			s = &CWERecall{CWE: r.CWE}
			per[r.CWE] = s
		}
		s.Rows++
		var best Severity
		for _, f := range res.Findings {
			for _, c := range f.CWE {
				if EquivalentCWE(c, r.CWE) && f.Severity > best {
					best = f.Severity
				}
			}
		}
		if best > 0 {
			s.AnyHits++
		}
		if best >= min {
			s.Hits++
		} else {
			m.Misses = append(m.Misses, fmt.Sprintf("%s row %d", r.CWE, i))
		}
	}
	for _, s := range per {
		m.PerCWE = append(m.PerCWE, *s)
	}
	sort.Slice(m.PerCWE, func(i, j int) bool { return m.PerCWE[i].CWE < m.PerCWE[j].CWE })

	names, progs, err := cleanPrograms(benchDir)
	if err != nil {
		return m, err
	}
	m.Programs = len(progs)
	for i, p := range progs {
		res, err := a.Analyze([]byte(p), "python")
		if err != nil {
			return m, fmt.Errorf("measure: %s: %w", names[i], err)
		}
		if fs := res.AtLeast(min); len(fs) > 0 {
			m.Flagged = append(m.Flagged, FlaggedProgram{Name: names[i], Findings: fs})
		}
	}
	return m, nil
}

func claimsCWE(claimed map[string]bool, cwe string) bool {
	for c := range claimed {
		if EquivalentCWE(c, cwe) {
			return true
		}
	}
	return false
}

// cleanPrograms loads HumanEval (prompt + canonical solution) and MBPP
// (reference code) programs, named by task id.
func cleanPrograms(benchDir string) (names, progs []string, err error) {
	he := filepath.Join(benchDir, humanEvalPath)
	err = readJSONL(he, true, func(line []byte) error {
		var r struct {
			TaskID   string `json:"task_id"`
			Prompt   string `json:"prompt"`
			Solution string `json:"canonical_solution"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		names = append(names, r.TaskID)
		progs = append(progs, r.Prompt+r.Solution)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	mb := filepath.Join(benchDir, mbppPath)
	err = readJSONL(mb, false, func(line []byte) error {
		var r struct {
			TaskID int    `json:"task_id"`
			Code   string `json:"code"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		names = append(names, fmt.Sprintf("MBPP/%d", r.TaskID))
		progs = append(progs, r.Code)
		return nil
	})
	return names, progs, err
}

func readJSONL(path string, gz bool, each func([]byte) error) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("measure: %w", err)
	}
	defer fh.Close()
	var r io.Reader = fh
	if gz {
		z, err := gzip.NewReader(fh)
		if err != nil {
			return fmt.Errorf("measure: %s: %w", path, err)
		}
		defer z.Close()
		r = z
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for n := 1; sc.Scan(); n++ {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		if err := each(sc.Bytes()); err != nil {
			return fmt.Errorf("measure: %s line %d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("measure: read %s: %w", path, err)
	}
	return nil
}

// WriteTable prints the per-CWE recall and the false-positive rate, with
// each flagged clean program and its findings.
func (m Measurement) WriteTable(w io.Writer) error {
	var b strings.Builder
	bar := m.MinSeverity.String() + "+"
	fmt.Fprintf(&b, "Analyzer at the bar severity >= %s (the codesec oracle's)\n\n", m.MinSeverity)
	fmt.Fprintf(&b, "Recall on CyberSecEval instruct.json Python rows: a DEVELOPMENT-SET number\n")
	fmt.Fprintf(&b, "(the rules were written while reading these rows; autocomplete.json holds the same\n")
	fmt.Fprintf(&b, "origin snippets, so it is no second set).\n\n")
	fmt.Fprintf(&b, "%-10s %6s %10s %9s %12s\n", "CWE", "rows", "hits@"+bar, "recall", "hits@any")
	for _, c := range m.PerCWE {
		fmt.Fprintf(&b, "%-10s %6d %10d %8.1f%% %12d\n", c.CWE, c.Rows, c.Hits, pct(c.Hits, c.Rows), c.AnyHits)
	}
	hits, anyHits, rows := m.Recall()
	fmt.Fprintf(&b, "%-10s %6d %10d %8.1f%% %12d (%.1f%%)\n", "TOTAL", rows, hits, pct(hits, rows), anyHits, pct(anyHits, rows))
	fmt.Fprintf(&b, "(rows of unclaimed CWEs left out: %d; rows that are fragments or fail to parse: %d)\n\n", m.Unclaimed, m.Unparsed)
	fmt.Fprintf(&b, "False positives on HumanEval + MBPP reference solutions: %d/%d programs (%.2f%%) with a finding at %s\n",
		len(m.Flagged), m.Programs, 100*m.FPRate(), bar)
	for _, p := range m.Flagged {
		for _, f := range p.Findings {
			fmt.Fprintf(&b, "  %s: %s (%s) line %d: %s\n", p.Name, f.RuleID, f.Severity, f.Line, f.Snippet)
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write measurement: %w", err)
	}
	return nil
}

func pct(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return 100 * float64(n) / float64(d)
}
