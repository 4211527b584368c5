package chart

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Bars is a horizontal grouped bar chart: one row per category (its name
// on the left, where a long name has room), one bar per group, each
// labelled with its value.
type Bars struct {
	Title      string
	ValueLabel string // the value axis's label, with its unit
	Categories []string
	Groups     []Group
	// Percent: the values are rates in [0, 1], drawn on a 0–100% axis.
	Percent bool
}

// Group is one colour of bars, a value per category; NaN is drawn as
// "n/a" (not measured), 0 as a visible stub.
type Group struct {
	Name   string
	Values []float64
}

// barThickness is a bar's height: room for its value label inside.
const barThickness = vg.Length(13)

func (b *Bars) build() (*built, error) {
	if len(b.Categories) == 0 || len(b.Groups) == 0 {
		return nil, fmt.Errorf("%q: no bars", b.Title)
	}
	lo, hi := 0.0, 0.0
	for _, g := range b.Groups {
		if len(g.Values) != len(b.Categories) {
			return nil, fmt.Errorf("%q: group %q has %d values for %d categories", b.Title, g.Name, len(g.Values), len(b.Categories))
		}
		for _, v := range g.Values {
			if math.IsInf(v, 0) {
				return nil, fmt.Errorf("%q: group %q: infinite value", b.Title, g.Name)
			}
			if !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if b.Percent && (lo < 0 || hi > 1) {
		return nil, fmt.Errorf("%q: rates outside [0, 1] (%g to %g)", b.Title, lo, hi)
	}
	p := plot.New()
	axisStyle(p, b.ValueLabel, "")
	grid := plotter.NewGrid()
	grid.Vertical.Color, grid.Horizontal.Color = gridColor, nil
	p.Add(grid)
	n := len(b.Categories)
	names := make([]string, n)
	for i, c := range b.Categories {
		names[n-1-i] = c // the first category on top
	}
	p.NominalY(names...)
	p.Y.Min, p.Y.Max = -0.5, float64(n)-0.5
	hb := &hbars{Bars: b}
	if b.Percent {
		hb.scale = 100
		p.X.Min, p.X.Max = 0, 100
		var ticks plot.ConstantTicks
		for v := 0; v <= 100; v += 20 {
			ticks = append(ticks, plot.Tick{Value: float64(v), Label: strconv.Itoa(v) + "%"})
		}
		p.X.Tick.Marker = ticks
	} else {
		hb.scale = 1
		// Room for the value labels beyond the longest bars.
		span := hi - lo
		if span == 0 {
			span = 1 // all zero
		}
		p.X.Min, p.X.Max = lo, hi
		if lo < 0 {
			p.X.Min -= 0.12 * span
		}
		if hi > 0 || lo == 0 {
			p.X.Max += 0.12 * span
		}
	}
	p.Add(hb)
	out := &built{title: b.Title, plot: p}
	for gi, g := range b.Groups {
		c := Colour(gi)
		out.legend = append(out.legend, entry{g.Name, []plot.Thumbnailer{swatch(c)}, c})
	}
	// Category rows of G bars and a gap, plus the x axis's ticks and label.
	out.height = vg.Length(n)*(vg.Length(len(b.Groups))*barThickness+12) + 44
	return out, nil
}

// swatch is a legend's filled square.
type swatch color.RGBA

func (s swatch) Thumbnail(c *draw.Canvas) {
	r := c.Rectangle
	side := min(r.Max.Y-r.Min.Y, r.Max.X-r.Min.X)
	mid := vg.Point{X: (r.Min.X + r.Max.X) / 2, Y: (r.Min.Y + r.Max.Y) / 2}
	c.FillPolygon(color.RGBA(s), []vg.Point{
		{X: mid.X - side/2, Y: mid.Y - side/2}, {X: mid.X + side/2, Y: mid.Y - side/2},
		{X: mid.X + side/2, Y: mid.Y + side/2}, {X: mid.X - side/2, Y: mid.Y + side/2},
	})
}

// hbars draws the bars and their value labels; thickness follows the
// data area so that the rows fill it.
type hbars struct {
	*Bars
	scale float64
}

func (h *hbars) Plot(c draw.Canvas, p *plot.Plot) {
	x, y := p.Transforms(&c)
	n, g := len(h.Categories), len(h.Groups)
	row := (c.Max.Y - c.Min.Y) / vg.Length(n)
	w := min(barThickness, row*0.8/vg.Length(g))
	label := style(9, textColor)
	label.YAlign = draw.YCenter
	for ci := range h.Categories {
		cy := y(float64(n - 1 - ci))
		for gi, grp := range h.Groups {
			top := cy + w*vg.Length(g)/2 - w*vg.Length(gi)
			mid := top - w/2
			v := grp.Values[ci]
			x0 := x(0)
			if math.IsNaN(v) {
				label.XAlign, label.Color = draw.XLeft, subtle
				c.FillText(label, vg.Point{X: x0 + 3, Y: mid}, "n/a")
				continue
			}
			// A zero is a stub, so that "0%" reads as measured, not missing.
			x1 := max(x(v*h.scale), x0+2)
			dir := vg.Length(1) // which way the bar grows
			if v < 0 {
				x1, dir = min(x(v*h.scale), x0-2), -1
			}
			c.FillPolygon(Colour(gi), []vg.Point{
				{X: x0, Y: top - w + 1}, {X: x1, Y: top - w + 1}, {X: x1, Y: top}, {X: x0, Y: top},
			})
			txt := strconv.FormatFloat(v*h.scale, 'f', 3, 64)
			if h.Percent {
				txt = strconv.FormatFloat(v*h.scale, 'f', 1, 64) + "%"
			}
			// Past the bar's end where there is room, else inside it.
			outside, inside := draw.XLeft, draw.XRight
			if dir < 0 {
				outside, inside = draw.XRight, draw.XLeft
			}
			end := x1 + dir*(3+label.Width(txt))
			if end <= c.Max.X && end >= c.Min.X {
				label.XAlign, label.Color = outside, textColor
				c.FillText(label, vg.Point{X: x1 + dir*3, Y: mid}, txt)
			} else {
				label.XAlign, label.Color = inside, color.White
				c.FillText(label, vg.Point{X: x1 - dir*3, Y: mid}, txt)
			}
		}
	}
}
