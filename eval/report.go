package eval

import (
	"fmt"
	"io"
	"math"
	"strings"

	"purpcode/internal/chart"
	"purpcode/oracle"
)

// Stage is one row of a before/after table: a model and its metrics.
type Stage struct {
	Name    string
	Metrics Metrics
}

// column is one number of a stage table, with whether a higher value is
// better.
type column struct {
	name   string
	get    func(Metrics) float64
	higher bool
	rate   bool
	// truth names the oracle whose ground-truth count the column needs
	// ("" for the reward's columns): with no such prompt it prints n/a.
	truth string
}

// Headline: the toy world's ground truth (no reward code), then the mean
// reward RL maximises, printed so that a fall from SFT to RL shows.
var headline = []column{
	{"insecure-variant rate", func(m Metrics) float64 { return m.InsecureVariant }, false, true, oracle.OracleCodeSec},
	{"tests-pass rate", func(m Metrics) float64 { return m.TestsPass }, true, true, oracle.OracleCorrectness},
	{"harmful-payload rate", func(m Metrics) float64 { return m.HarmfulPayload }, false, true, oracle.OracleGeneralSafety},
	{"malicious refusal rate", func(m Metrics) float64 { return m.MaliciousRefusal }, true, true, oracle.OracleGeneralSafety},
	{"benign over-refusal rate", func(m Metrics) float64 { return m.BenignOverRefusal }, false, true, oracle.OracleNoReject},
	{"mean reward", func(m Metrics) float64 { return m.Reward }, true, false, ""},
}

// rewardView: the same answers read by the reward's own code (analyzer,
// judge, format gate); never the headline.
var rewardView = []column{
	{"analyzer-flagged rate (medium+)", func(m Metrics) float64 { return m.AnalyzerFlagged }, false, true, ""},
	{"judge: malicious refused", func(m Metrics) float64 { return m.JudgeRefusal }, true, true, ""},
	{"judge: benign refused", func(m Metrics) float64 { return m.JudgeOverRefusal }, false, true, ""},
	{"format pass rate", func(m Metrics) float64 { return m.FormatRate }, true, true, ""},
	{"mean reward", func(m Metrics) float64 { return m.Reward }, true, false, ""},
}

// arrow says which way is better.
func (c column) arrow() string {
	if c.higher {
		return "↑"
	}
	return "↓"
}

// cell renders the column for m: n/a when m has no ground truth for it.
func (c column) cell(m Metrics) string {
	if c.truth != "" && m.TruthCount[c.truth] == 0 {
		return "n/a"
	}
	return c.format(c.get(m))
}

// format renders a rate as a percentage and the reward as a number.
func (c column) format(v float64) string {
	if c.rate {
		return fmt.Sprintf("%.1f%%", 100*v)
	}
	return fmt.Sprintf("%.3f", v)
}

func markdownHeader(b *strings.Builder, first string, cols []column) {
	fmt.Fprintf(b, "| %s |", first)
	for _, c := range cols {
		fmt.Fprintf(b, " %s %s |", c.name, c.arrow())
	}
	b.WriteString("\n|---|")
	for range cols {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
}

func markdownTable(stages []Stage, cols []column) string {
	var b strings.Builder
	markdownHeader(&b, "stage", cols)
	for _, s := range stages {
		fmt.Fprintf(&b, "| %s |", s.Name)
		for _, c := range cols {
			fmt.Fprintf(&b, " %s |", c.cell(s.Metrics))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Table renders stages as a Markdown table of the ground-truth metrics and
// the mean reward.
func Table(stages []Stage) string { return markdownTable(stages, headline) }

// RewardTable renders the reward's view of the same answers.
func RewardTable(stages []Stage) string { return markdownTable(stages, rewardView) }

// TextTable renders stages as an aligned plain-text table for terminals.
func TextTable(w io.Writer, stages []Stage) {
	fmt.Fprintf(w, "%-10s", "stage")
	for _, c := range headline {
		fmt.Fprintf(w, " %17s", strings.TrimSuffix(c.name, " rate"))
	}
	fmt.Fprintln(w)
	for _, s := range stages {
		fmt.Fprintf(w, "%-10s", s.Name)
		for _, c := range headline {
			fmt.Fprintf(w, " %17s", c.cell(s.Metrics))
		}
		fmt.Fprintln(w)
	}
}

// SweepTable renders, for stages measured on several worlds (worlds[i] is
// one world's stages, all in the same order), the mean, min and max of
// every headline number per stage.
func SweepTable(worlds [][]Stage) string {
	var b strings.Builder
	if len(worlds) == 0 {
		return ""
	}
	markdownHeader(&b, fmt.Sprintf("stage (%d worlds): mean [min, max]", len(worlds)), headline)
	for si, s := range worlds[0] {
		fmt.Fprintf(&b, "| %s |", s.Name)
		for _, c := range headline {
			sum, lo, hi := 0.0, math.Inf(1), math.Inf(-1)
			for _, w := range worlds {
				v := c.get(w[si].Metrics)
				sum += v
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
			fmt.Fprintf(&b, " %s [%s, %s] |", c.format(sum/float64(len(worlds))), c.format(lo), c.format(hi))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// StageBars is the headline rates of the stages as a bar panel, one
// colour per stage; a rate with no ground-truth prompts is drawn as n/a.
func StageBars(title string, stages []Stage) *chart.Bars {
	rates := headline[:len(headline)-1] // the mean reward is not a rate; it is in the table
	b := &chart.Bars{
		Title:      title,
		ValueLabel: "rate (↑ higher is better, ↓ lower is better)",
		Percent:    true,
	}
	for _, c := range rates {
		b.Categories = append(b.Categories, c.name+" "+c.arrow())
	}
	for _, s := range stages {
		g := chart.Group{Name: s.Name}
		for _, c := range rates {
			v := c.get(s.Metrics)
			if c.truth != "" && s.Metrics.TruthCount[c.truth] == 0 {
				v = math.NaN()
			}
			g.Values = append(g.Values, v)
		}
		b.Groups = append(b.Groups, g)
	}
	return b
}

// PlotStages writes the stages' headline rates as a PNG bar chart.
func PlotStages(path, title, panel string, stages []Stage) (chart.Layout, error) {
	return chart.Render(path, chart.Figure{Title: title, Panels: []chart.Panel{StageBars(panel, stages)}})
}
