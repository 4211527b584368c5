package eval

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strings"

	"purpcode/oracle"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
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
		arrow := "↓"
		if c.higher {
			arrow = "↑"
		}
		fmt.Fprintf(b, " %s %s |", c.name, arrow)
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

// Series is one curve: y values at x positions.
type Series struct {
	Name string
	X, Y []float64
}

// PlotCurves writes a line chart of the series as a PNG.
func PlotCurves(path, title, xlabel, ylabel string, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	for i, s := range series {
		pts := make(plotter.XYs, len(s.X))
		for j := range s.X {
			pts[j].X, pts[j].Y = s.X[j], s.Y[j]
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: series %s: %w", path, s.Name, err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	// Leave headroom above the data so the legend never covers a curve.
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, y := range s.Y {
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
		}
	}
	if ymax > ymin {
		p.Y.Min, p.Y.Max = math.Min(0, ymin), ymax+0.35*(ymax-math.Min(0, ymin))
	}
	p.Legend.Top, p.Legend.Left = true, true
	if err := p.Save(7*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

// PlotStages writes grouped bars: one group per headline metric, one bar
// per stage, values in percent.
func PlotStages(path, title string, stages []Stage) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "%"
	p.Y.Min, p.Y.Max = 0, 130 // headroom for the legend above the 100% bars
	p.Add(plotter.NewGrid())
	w := vg.Points(14)
	rates := headline[:len(headline)-1] // the bars are percentages; the reward is in the table
	names := make([]string, len(rates))
	for i, h := range rates {
		names[i] = h.name
	}
	for si, s := range stages {
		vals := make(plotter.Values, len(rates))
		for i, h := range rates {
			vals[i] = 100 * h.get(s.Metrics)
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		bars.Color = plotutil.Color(si)
		bars.LineStyle.Color = color.Gray{Y: 60}
		bars.Offset = vg.Length(si-len(stages)/2) * w
		p.Add(bars)
		p.Legend.Add(s.Name, bars)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.NominalX(wrapNames(names)...)
	if err := p.Save(9*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

// wrapNames breaks long axis labels onto two lines.
func wrapNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		if j := strings.LastIndex(n, " "); j > 0 {
			n = n[:j] + "\n" + n[j+1:]
		}
		out[i] = n
	}
	return out
}
