package oracle

import (
	"context"
	"fmt"
	"strings"

	"purpcode/analyzer"
	"purpcode/sandbox"
)

// Oracle names.
const (
	OracleCodeSec       = "codesec"
	OracleCorrectness   = "correctness"
	OracleGeneralSafety = KindGeneralSafety
	OracleNoReject      = KindNoReject
)

// Oracles lists the oracle names a Row may carry.
var Oracles = []string{OracleCodeSec, OracleCorrectness, OracleGeneralSafety, OracleNoReject}

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Row is one response to score: the RL prompt row plus the policy's
// response.
type Row struct {
	ID       string         `json:"id"`
	Messages []Message      `json:"messages,omitempty"`
	Prompt   string         `json:"prompt,omitempty"`
	Response string         `json:"response"`
	Oracle   string         `json:"oracle"`
	Tests    *Tests         `json:"tests,omitempty"`
	Meta     map[string]any `json:"meta,omitempty"`
}

// PromptText is the request the response answers: Prompt when set, else the
// single user message, else the conversation flattened as "role: content".
func (r Row) PromptText() string {
	if r.Prompt != "" {
		return r.Prompt
	}
	if len(r.Messages) == 1 {
		return r.Messages[0].Content
	}
	var b strings.Builder
	for i, m := range r.Messages {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(m.Role + ": " + m.Content)
	}
	return b.String()
}

// Score is the reward of one row with its evidence.
type Score struct {
	ID string
	// Reward = format gate (0 or 1) x OracleScore.
	Reward       float64
	Format       bool
	FormatReason string
	Oracle       string
	// OracleRan is false when the format gate failed first (unless
	// Config.AlwaysRunOracle).
	OracleRan   bool
	OracleScore float64
	// Detail explains the oracle score in one line.
	Detail     string
	Findings   []analyzer.Finding
	TestOutput string
	Verdict    *Verdict
}

// Config configures a Scorer; start from DefaultConfig.
type Config struct {
	Format  FormatOptions
	CodeSec CodeSecOptions
	Tests   TestOptions
	// AlwaysRunOracle runs the oracle even when the format gate fails (for
	// reports; the reward is 0 either way).
	AlwaysRunOracle bool
}

// DefaultConfig is PurpCode's reward configuration.
func DefaultConfig() Config {
	return Config{Format: DefaultFormatOptions(), CodeSec: DefaultCodeSecOptions(), Tests: DefaultTestOptions()}
}

// Scorer computes rewards. It is safe for concurrent use when its analyzer,
// runner and judge are (the ones of this project are).
type Scorer struct {
	an    Analyzer
	sb    *sandbox.Runner
	judge Judge
	cfg   Config
}

// NewScorer builds a Scorer. an may be nil when no row uses codesec (and
// then unlabelled blocks are never treated as Python), sb may be nil when
// none uses correctness, judge nil means HeuristicJudge.
func NewScorer(an Analyzer, sb *sandbox.Runner, judge Judge, cfg Config) *Scorer {
	if judge == nil {
		judge = HeuristicJudge{}
	}
	return &Scorer{an: an, sb: sb, judge: judge, cfg: cfg}
}

// Score computes the reward of one row. Errors mean the row could not be
// scored (unknown oracle, missing tests, no analyzer or sandbox for the
// oracle, judge failure), never that the response is bad.
func (s *Scorer) Score(ctx context.Context, row Row) (Score, error) {
	sc := Score{ID: row.ID, Oracle: row.Oracle}
	switch row.Oracle {
	case OracleCodeSec, OracleGeneralSafety, OracleNoReject:
	case OracleCorrectness:
		if _, err := row.Tests.Kind(); err != nil {
			return sc, fmt.Errorf("row %q: %w", row.ID, err)
		}
	default:
		return sc, fmt.Errorf("row %q: unknown oracle %q (want one of %s)", row.ID, row.Oracle, strings.Join(Oracles, ", "))
	}
	f := CheckFormat(row.Response, s.cfg.Format)
	sc.Format, sc.FormatReason = f.OK, f.Reason
	if !f.OK && !s.cfg.AlwaysRunOracle {
		return sc, nil
	}
	answer := f.Answer
	if !f.OK && answer == "" {
		answer = ExtractAnswer(strings.TrimPrefix(strings.TrimSpace(row.Response), AnalysisHeader))
	}
	sc.OracleRan = true
	switch row.Oracle {
	case OracleCodeSec:
		r, err := CodeSec(s.an, row.Response, s.cfg.CodeSec)
		if err != nil {
			return sc, fmt.Errorf("row %q: %w", row.ID, err)
		}
		sc.OracleScore, sc.Detail, sc.Findings = r.Score, r.Detail, r.Findings
	case OracleCorrectness:
		r, err := Correctness(ctx, s.sb, PythonCode(s.an, answer), row.Tests, s.cfg.Tests)
		if err != nil {
			return sc, fmt.Errorf("row %q: correctness: %w", row.ID, err)
		}
		sc.OracleScore, sc.Detail, sc.TestOutput = r.Score, r.Detail, r.Output
	default:
		v, err := s.judge.Judge(ctx, row.Oracle, row.PromptText(), answer)
		if err != nil {
			return sc, fmt.Errorf("row %q: %s judge: %w", row.ID, row.Oracle, err)
		}
		sc.OracleScore, sc.Detail, sc.Verdict = v.Score, v.Label+": "+v.Reason, &v
	}
	if sc.Format {
		sc.Reward = sc.OracleScore
	}
	return sc, nil
}
