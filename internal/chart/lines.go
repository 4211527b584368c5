package chart

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Series is one curve of a Lines panel.
type Series struct {
	Name string
	// X and Y are the values; a NaN Y marks an X where the value was not
	// measured, and the line breaks there instead of joining its
	// neighbours.
	X, Y []float64
	// Smooth draws the values as faint points under an exponential
	// moving average of them (noisy per-step values such as a loss); with
	// under 20 values it draws a marked line instead.
	Smooth bool
	// Points marks every value (sparse series such as held-out
	// evaluations); a value with no measured neighbour is always marked.
	Points bool
}

// Marker is a dashed vertical line with a label, such as an epoch end.
type Marker struct {
	X     float64
	Label string
}

// Lines is a line chart.
type Lines struct {
	Title, XLabel, YLabel string
	Series                []Series
	Markers               []Marker
	// YFixed fixes the y range to [YMin, YMax] (a rate's 0 and 1);
	// otherwise it fits the data with a little room.
	YFixed     bool
	YMin, YMax float64
	// ZeroY stretches a fitted y range to include 0 (a learning rate,
	// a KL: quantities whose size matters, not just their trend).
	ZeroY bool
	// Height is the axes block's (0: 2.4 inches).
	Height vg.Length
}

// smoothSpan is the EMA span used for n values: about a tenth of the run,
// so that a 20-step demo is barely smoothed and a 2000-step run is.
func smoothSpan(n int) int { return min(50, max(1, n/10)) }

// EMA is the debiased exponential moving average of y with the given span
// (weight 1 - 2/(span+1)); NaNs stay NaN and do not reset it.
func EMA(y []float64, span int) []float64 {
	w := 1 - 2/float64(span+1)
	out := make([]float64, len(y))
	var acc, norm float64
	for i, v := range y {
		if math.IsNaN(v) {
			out[i] = math.NaN()
			continue
		}
		acc = w*acc + (1-w)*v
		norm = w*norm + (1 - w)
		out[i] = acc / norm
	}
	return out
}

// segments splits the measured points into runs without a NaN.
func segments(x, y []float64) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for i := range x {
		if math.IsNaN(y[i]) || math.IsInf(y[i], 0) || math.IsNaN(x[i]) || math.IsInf(x[i], 0) {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, plotter.XY{X: x[i], Y: y[i]})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (l *Lines) build() (*built, error) {
	p := plot.New()
	axisStyle(p, l.XLabel, l.YLabel)
	grid := plotter.NewGrid()
	grid.Vertical.Color, grid.Horizontal.Color = gridColor, gridColor
	p.Add(grid)
	b := &built{title: l.Title, plot: p, height: l.Height}
	if b.height == 0 {
		b.height = 2.4 * vg.Inch
	}
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	ci := 0
	for _, s := range l.Series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("series %q: %d x values, %d y values", s.Name, len(s.X), len(s.Y))
		}
		segs := segments(s.X, s.Y)
		if len(segs) == 0 {
			continue // never measured: no legend entry for an empty line
		}
		for _, seg := range segs {
			for _, pt := range seg {
				xmin, xmax = math.Min(xmin, pt.X), math.Max(xmax, pt.X)
				ymin, ymax = math.Min(ymin, pt.Y), math.Max(ymax, pt.Y)
			}
		}
		c := Colour(ci)
		ci++
		lineStyle := draw.LineStyle{Color: c, Width: 2}
		var n int
		for _, seg := range segs {
			n += len(seg)
		}
		span := smoothSpan(n)
		if s.Smooth && span > 1 {
			var raw plotter.XYs
			for _, seg := range segs {
				raw = append(raw, seg...)
			}
			sc, err := scatter(raw, tint(c), 1.8)
			if err != nil {
				return nil, fmt.Errorf("series %q: %w", s.Name, err)
			}
			p.Add(sc)
			b.legend = append(b.legend, entry{s.Name + " (per step)", []plot.Thumbnailer{sc}, tint(c)})
			thumb, err := addLines(p, segments(s.X, EMA(s.Y, span)), lineStyle, false)
			if err != nil {
				return nil, fmt.Errorf("series %q: %w", s.Name, err)
			}
			b.legend = append(b.legend, entry{fmt.Sprintf("%s (EMA over ~%d steps)", s.Name, span), thumb, c})
			continue
		}
		// A series asked to be smoothed but too short for it is marked
		// at every value instead.
		thumb, err := addLines(p, segs, lineStyle, s.Points || s.Smooth)
		if err != nil {
			return nil, fmt.Errorf("series %q: %w", s.Name, err)
		}
		b.legend = append(b.legend, entry{s.Name, thumb, c})
	}
	if ci == 0 {
		return nil, fmt.Errorf("%q: no measured values", l.Title)
	}
	if len(l.Markers) > 0 {
		p.Add(vmarks(l.Markers))
	}
	p.X.Min, p.X.Max = xmin, xmax
	if xmin > 0 && xmin <= 0.1*xmax {
		p.X.Min = 0 // steps from 1: round ticks (0, 10, 20) instead of 1, 13, 25
	}
	if xmin == xmax {
		p.X.Min, p.X.Max = xmin-1, xmax+1
	}
	if l.YFixed {
		p.Y.Min, p.Y.Max = l.YMin, l.YMax
	} else {
		if l.ZeroY {
			ymin, ymax = math.Min(ymin, 0), math.Max(ymax, 0)
		}
		pad := 0.06 * (ymax - ymin)
		if pad == 0 { // a constant: centre it
			pad = 0.1 * math.Abs(ymax)
		}
		if pad == 0 {
			pad = 1
		}
		p.Y.Min, p.Y.Max = ymin-pad, ymax+pad
		if l.ZeroY && ymin >= 0 {
			p.Y.Min = 0
		}
	}
	return b, nil
}

// addLines draws the segments in one style and returns the legend swatch:
// the line, with a marker when every point is marked.
func addLines(p *plot.Plot, segs []plotter.XYs, sty draw.LineStyle, points bool) ([]plot.Thumbnailer, error) {
	var thumb []plot.Thumbnailer
	for _, seg := range segs {
		if len(seg) > 1 {
			l, err := plotter.NewLine(seg)
			if err != nil {
				return nil, err
			}
			l.LineStyle = sty
			p.Add(l)
			if thumb == nil {
				thumb = []plot.Thumbnailer{l}
			}
		}
		if points || len(seg) == 1 {
			sc, err := scatter(seg, sty.Color, 2.6)
			if err != nil {
				return nil, err
			}
			p.Add(sc)
			if points && len(thumb) < 2 {
				thumb = append(thumb, sc)
			}
		}
	}
	if thumb == nil { // only isolated points
		sc, err := scatter(segs[0], sty.Color, 2.6)
		if err != nil {
			return nil, err
		}
		thumb = []plot.Thumbnailer{sc}
	}
	return thumb, nil
}

func scatter(pts plotter.XYs, c color.Color, r vg.Length) (*plotter.Scatter, error) {
	sc, err := plotter.NewScatter(pts)
	if err != nil {
		return nil, err
	}
	sc.GlyphStyle = draw.GlyphStyle{Color: c, Radius: r, Shape: draw.CircleGlyph{}}
	return sc, nil
}

// vmarks draws the markers across the data area with their labels at
// the top, turned to the line's left where the right has no room.
type vmarks []Marker

func (m vmarks) Plot(c draw.Canvas, p *plot.Plot) {
	x, _ := p.Transforms(&c)
	line := draw.LineStyle{Color: subtle, Width: 1, Dashes: []vg.Length{4, 3}}
	ts := style(9, subtle)
	ts.YAlign = draw.YTop
	for _, mk := range m {
		px := x(mk.X)
		if !c.ContainsX(px) {
			continue
		}
		c.StrokeLine2(line, px, c.Min.Y, px, c.Max.Y)
		ts.XAlign = draw.XLeft
		tx := px + 3
		if px+3+ts.Width(mk.Label) > c.Max.X {
			ts.XAlign, tx = draw.XRight, px-3
		}
		c.FillText(ts, vg.Point{X: tx, Y: c.Max.Y - 2}, mk.Label)
	}
}
