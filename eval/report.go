package eval

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strings"

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

// headline lists the four recipe metrics in table order, with whether a
// higher value is better.
type headlineMetric struct {
	name   string
	get    func(Metrics) float64
	higher bool
}

var headline = []headlineMetric{
	{"insecure-code rate", func(m Metrics) float64 { return m.InsecureRate }, false},
	{"functional pass rate", func(m Metrics) float64 { return m.PassRate }, true},
	{"malicious refusal rate", func(m Metrics) float64 { return m.RefusalRate }, true},
	{"benign over-refusal rate", func(m Metrics) float64 { return m.OverRefusal }, false},
	{"format pass rate", func(m Metrics) float64 { return m.FormatRate }, true},
	{"mean reward", func(m Metrics) float64 { return m.Reward }, true},
}

// format renders a rate as a percentage and the reward as a number.
func (h headlineMetric) format(m Metrics) string {
	if strings.HasSuffix(h.name, "rate") {
		return fmt.Sprintf("%.1f%%", 100*h.get(m))
	}
	return fmt.Sprintf("%.3f", h.get(m))
}

// Table renders stages as a Markdown table of percentages.
func Table(stages []Stage) string {
	var b strings.Builder
	b.WriteString("| stage |")
	for _, h := range headline {
		arrow := "↓"
		if h.higher {
			arrow = "↑"
		}
		fmt.Fprintf(&b, " %s %s |", h.name, arrow)
	}
	b.WriteString("\n|---|")
	for range headline {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, s := range stages {
		fmt.Fprintf(&b, "| %s |", s.Name)
		for _, h := range headline {
			fmt.Fprintf(&b, " %s |", h.format(s.Metrics))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TextTable renders stages as an aligned plain-text table for terminals.
func TextTable(w io.Writer, stages []Stage) {
	fmt.Fprintf(w, "%-10s", "stage")
	for _, h := range headline {
		fmt.Fprintf(w, " %14s", strings.TrimSuffix(h.name, " rate"))
	}
	fmt.Fprintln(w)
	for _, s := range stages {
		fmt.Fprintf(w, "%-10s", s.Name)
		for _, h := range headline {
			fmt.Fprintf(w, " %14s", h.format(s.Metrics))
		}
		fmt.Fprintln(w)
	}
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
