package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"

	"purpcode/oracle"
)

func runReward(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reward", stderr)
	data := fs.String("data", "", "JSONL rows {\"id\",\"messages\"|\"prompt\",\"response\",\"oracle\",\"tests\"?} to score (required)")
	asJSON := fs.Bool("json", false, "print one JSON document (rows and summary) instead of text")
	workers := fs.Int("workers", runtime.NumCPU(), "rows scored at once (sandbox jobs are also bounded by the sandbox pool)")
	fullText := fs.Bool("full-text", false, "responses include the leading \"## Analysis\" header (default: it was prefilled)")
	noCode := fs.Float64("no-code-score", oracle.DefaultCodeSecOptions().NoCodeScore, "codesec score of a response without Python code")
	always := fs.Bool("always-run-oracle", true, "run the oracle even when the format gate fails (the reward is 0 either way)")
	tail := fs.Int("tail", 600, "bytes of test output shown per row in text mode")
	judgeDir := addJudgeFlag(fs)
	cpu := addCPUFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *data == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "purpcode reward: --data is required and no positional arguments are accepted")
		return errUsage
	}
	if *workers < 1 {
		*workers = 1
	}
	rows, lines, err := readRewardRows(*data)
	if err != nil {
		return err
	}

	cfg := oracle.DefaultConfig()
	cfg.Format.FullText = *fullText
	cfg.CodeSec.NoCodeScore = *noCode
	cfg.AlwaysRunOracle = *always
	judge, err := loadJudge(*judgeDir, cpu.cpu())
	if err != nil {
		return err
	}
	scorer, closeScorer, err := oracle.NewScorerFor(rows, judge, cfg, *workers)
	if err != nil {
		return err
	}
	defer closeScorer()

	scores := make([]oracle.Score, len(rows))
	errs := make([]error, len(rows))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				scores[i], errs[i] = scorer.Score(context.Background(), rows[i])
			}
		}()
	}
	for i := range rows {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%s:%d: %w", *data, lines[i], err)
		}
	}

	sum := summarize(scores)
	if *asJSON {
		out := make([]rewardScore, len(scores))
		for i, s := range scores {
			out[i] = toRewardScore(s, rows[i].Response)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"rows": out, "summary": sum}); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	for i, s := range scores {
		printScore(stdout, s, *tail, rows[i].Response)
	}
	fmt.Fprintf(stdout, "\nsummary: %d rows, mean reward %.3f, format pass %d/%d\n", sum.Rows, sum.MeanReward, sum.FormatPass, sum.Rows)
	for _, o := range sum.byName() {
		st := sum.Oracles[o]
		fmt.Fprintf(stdout, "  %-15s %4d rows  mean reward %.3f  mean oracle score %.3f\n", o, st.Rows, st.MeanReward, st.MeanOracle)
	}
	return nil
}

// readRewardRows reads JSONL rows, skipping blank lines, and returns each
// row's line number for error messages.
func readRewardRows(path string) ([]oracle.Row, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	var rows []oracle.Row
	var lines []int
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var row oracle.Row
			if derr := json.Unmarshal(line, &row); derr != nil {
				return nil, nil, fmt.Errorf("%s:%d: %w", path, n, derr)
			}
			if row.Oracle == "" {
				return nil, nil, fmt.Errorf("%s:%d: row %q: missing \"oracle\" (want one of %s)", path, n, row.ID, strings.Join(oracle.Oracles, ", "))
			}
			if row.ID == "" {
				row.ID = fmt.Sprintf("line%d", n)
			}
			rows = append(rows, row)
			lines = append(lines, n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read %s:%d: %w", path, n, err)
		}
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("%s: no rows", path)
	}
	return rows, lines, nil
}

type oracleStats struct {
	Rows       int     `json:"rows"`
	MeanReward float64 `json:"mean_reward"`
	MeanOracle float64 `json:"mean_oracle_score"`
}

type rewardSummary struct {
	Rows       int                     `json:"rows"`
	MeanReward float64                 `json:"mean_reward"`
	FormatPass int                     `json:"format_pass"`
	Oracles    map[string]*oracleStats `json:"oracles"`
}

func (s rewardSummary) byName() []string {
	names := make([]string, 0, len(s.Oracles))
	for n := range s.Oracles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func summarize(scores []oracle.Score) rewardSummary {
	s := rewardSummary{Rows: len(scores), Oracles: map[string]*oracleStats{}}
	for _, sc := range scores {
		s.MeanReward += sc.Reward
		if sc.Format {
			s.FormatPass++
		}
		st := s.Oracles[sc.Oracle]
		if st == nil {
			st = &oracleStats{}
			s.Oracles[sc.Oracle] = st
		}
		st.Rows++
		st.MeanReward += sc.Reward
		st.MeanOracle += sc.OracleScore
	}
	if s.Rows > 0 {
		s.MeanReward /= float64(s.Rows)
	}
	for _, st := range s.Oracles {
		st.MeanReward /= float64(st.Rows)
		st.MeanOracle /= float64(st.Rows)
	}
	return s
}

// rewardFinding locates a finding as a reader does: the fenced code block
// (1-based, among all the response's blocks) and the line in its code;
// response_line counts from the response's first line.
type rewardFinding struct {
	RuleID       string   `json:"rule_id"`
	CWE          []string `json:"cwe"`
	Severity     string   `json:"severity"`
	Message      string   `json:"message"`
	Block        int      `json:"block"`
	Line         int      `json:"line"`
	Column       int      `json:"column"`
	ResponseLine int      `json:"response_line"`
	Snippet      string   `json:"snippet,omitempty"`
}

// findingsOf converts the oracle's findings, whose lines count from the
// start of the response, to block-relative ones.
func findingsOf(s oracle.Score, response string) []rewardFinding {
	blocks := oracle.ExtractCode(response)
	var out []rewardFinding
	for _, f := range s.Findings {
		rf := rewardFinding{RuleID: f.RuleID, CWE: f.CWE, Severity: f.Severity.String(), Message: f.Message,
			Line: f.Line, Column: f.Column, ResponseLine: f.Line, Snippet: f.Snippet}
		// The block's code starts on the line after its opening fence
		// (CodeBlock.Line), so the last block opened before the finding
		// holds it.
		for i := len(blocks) - 1; i >= 0; i-- {
			if blocks[i].Line < f.Line {
				rf.Block, rf.Line = i+1, f.Line-blocks[i].Line
				break
			}
		}
		out = append(out, rf)
	}
	return out
}

type rewardVerdict struct {
	Label  string `json:"label"`
	Source string `json:"source"`
	Reason string `json:"reason,omitempty"`
}

type rewardScore struct {
	ID           string          `json:"id"`
	Oracle       string          `json:"oracle"`
	Reward       float64         `json:"reward"`
	Format       bool            `json:"format"`
	FormatReason string          `json:"format_reason,omitempty"`
	OracleRan    bool            `json:"oracle_ran"`
	OracleScore  float64         `json:"oracle_score"`
	Detail       string          `json:"detail,omitempty"`
	Findings     []rewardFinding `json:"findings,omitempty"`
	TestOutput   string          `json:"test_output,omitempty"`
	Verdict      *rewardVerdict  `json:"verdict,omitempty"`
}

func toRewardScore(s oracle.Score, response string) rewardScore {
	j := rewardScore{ID: s.ID, Oracle: s.Oracle, Reward: s.Reward, Format: s.Format, FormatReason: s.FormatReason,
		OracleRan: s.OracleRan, OracleScore: s.OracleScore, Detail: s.Detail, TestOutput: s.TestOutput}
	j.Findings = findingsOf(s, response)
	if s.Verdict != nil {
		j.Verdict = &rewardVerdict{s.Verdict.Label, s.Verdict.Source, s.Verdict.Reason}
	}
	return j
}

func printScore(w io.Writer, s oracle.Score, tail int, response string) {
	format := "ok"
	if !s.Format {
		format = "FAIL (" + s.FormatReason + ")"
	}
	fmt.Fprintf(w, "%s  oracle=%s  reward=%.2f  format=%s", s.ID, s.Oracle, s.Reward, format)
	if s.OracleRan {
		fmt.Fprintf(w, "  %s=%.2f", s.Oracle, s.OracleScore)
	}
	fmt.Fprintln(w)
	if s.Detail != "" {
		fmt.Fprintf(w, "    %s\n", s.Detail)
	}
	for _, f := range findingsOf(s, response) {
		fmt.Fprintf(w, "    finding %s [%s, %s] code block %d line %d: %s\n", f.RuleID, strings.Join(f.CWE, ","), f.Severity, f.Block, f.Line, f.Message)
	}
	if out := strings.TrimSpace(s.TestOutput); out != "" {
		if tail > 0 && len(out) > tail {
			out = "..." + out[len(out)-tail:]
		}
		fmt.Fprintf(w, "    test output:\n      %s\n", strings.ReplaceAll(out, "\n", "\n      "))
	}
}
