package chart

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// DPI of the PNGs: an 8-inch figure is 960 pixels wide, sharp when a
// README or slide scales it down to ~800.
const DPI = 120

// Sizes, in points, of the figure's parts.
const (
	defaultWidth = 8 * vg.Inch
	margin       = vg.Length(10) // kept blank on every side
	panelGap     = vg.Length(14)
	legendSwatch = vg.Length(22)
	legendGap    = vg.Length(14) // between legend entries
	rightPad     = vg.Length(16) // room for the last x tick label
)

var (
	sans      = font.Font{Typeface: "Liberation", Variant: "Sans"}
	textColor = color.Gray{Y: 30}
	subtle    = color.Gray{Y: 110}
	gridColor = color.Gray{Y: 225}
)

func style(size vg.Length, c color.Color) text.Style {
	return text.Style{Color: c, Font: font.From(sans, size), Handler: plot.DefaultTextHandler}
}

// palette is Tableau 10 without its grey (the grey is the text's and the
// markers'): distinct hues that stay apart for most colour-blind readers.
var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {188, 189, 34, 255}, {23, 190, 207, 255},
}

// Colour is the i-th series colour.
func Colour(i int) color.RGBA { return palette[i%len(palette)] }

// tint mixes c with white: the raw points under a smoothed line.
func tint(c color.RGBA) color.RGBA {
	mix := func(v uint8) uint8 { return uint8(255 - (255-int(v))*45/100) }
	return color.RGBA{mix(c.R), mix(c.G), mix(c.B), 255}
}

// Figure is a title over panels stacked top to bottom.
type Figure struct {
	Title  string
	Width  vg.Length // 0: 8 inches
	Panels []Panel
}

// Panel is one chart of a figure: *Lines or *Bars.
type Panel interface {
	build() (*built, error)
}

// built is a panel ready to draw.
type built struct {
	title  string
	plot   *plot.Plot
	legend []entry
	height vg.Length // of the axes block (plot, ticks and axis labels)
}

// entry is one legend line: a name, the swatch and its identifying colour.
type entry struct {
	name   string
	thumbs []plot.Thumbnailer
	colour color.RGBA
}

// Layout is what Render drew, in pixels with y growing downwards.
type Layout struct {
	Width, Height int
	Margin        int // blank border on every side
	Panels        []PanelLayout
}

// PanelLayout locates one panel.
type PanelLayout struct {
	Data    image.Rectangle // the data area inside the axes
	Legend  image.Rectangle // empty when the panel has no legend
	Colours []color.RGBA    // legend entries' colours, in legend order
}

// Render draws f to a PNG at path and returns its layout.
func Render(path string, f Figure) (Layout, error) {
	if len(f.Panels) == 0 {
		return Layout{}, fmt.Errorf("chart %s: no panels", path)
	}
	w := f.Width
	if w == 0 {
		w = defaultWidth
	}
	inner := w - 2*margin
	panels := make([]*built, len(f.Panels))
	for i, p := range f.Panels {
		b, err := p.build()
		if err != nil {
			return Layout{}, fmt.Errorf("chart %s: %w", path, err)
		}
		panels[i] = b
	}

	titleSty := style(15, color.Black)
	panelSty := style(12, color.Black)
	legendSty := style(10, textColor)
	titleLines := wrap(titleSty, f.Title, inner)
	h := 2*margin + block(titleSty, titleLines)
	if len(titleLines) > 0 {
		h += 6
	}
	for i, b := range panels {
		if i > 0 {
			h += panelGap
		}
		h += block(panelSty, wrap(panelSty, b.title, inner)) + 4
		h += legendHeight(legendSty, b.legend, inner)
		h += b.height
	}

	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(DPI), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	top := h - margin
	top = drawLines(dc, titleSty, titleLines, margin, top)
	if len(titleLines) > 0 {
		top -= 6
	}

	// Axes canvases first, so that all data areas can share their left
	// and right edges (as plot.Align does for uniform tiles).
	type slot struct {
		titleLines []string
		legendTop  vg.Length
		axes       draw.Canvas
	}
	slots := make([]slot, len(panels))
	for i, b := range panels {
		if i > 0 {
			top -= panelGap
		}
		s := slot{titleLines: wrap(panelSty, b.title, inner)}
		top -= block(panelSty, s.titleLines) + 4
		s.legendTop = top
		top -= legendHeight(legendSty, b.legend, inner)
		s.axes = draw.Crop(dc, margin, -margin-rightPad, 0, 0)
		s.axes.Max.Y, s.axes.Min.Y = top, top-b.height
		top -= b.height
		slots[i] = s
	}
	var left, right vg.Length
	for i, b := range panels {
		d := b.plot.DataCanvas(slots[i].axes)
		left = max(left, d.Min.X-slots[i].axes.Min.X)
		right = max(right, slots[i].axes.Max.X-d.Max.X)
	}

	scale := float64(DPI) / 72
	bounds := img.Image().Bounds()
	px := func(r vg.Rectangle) image.Rectangle {
		return image.Rect(int(math.Floor(float64(r.Min.X)*scale)), bounds.Dy()-int(math.Ceil(float64(r.Max.Y)*scale)),
			int(math.Ceil(float64(r.Max.X)*scale)), bounds.Dy()-int(math.Floor(float64(r.Min.Y)*scale)))
	}
	lay := Layout{Width: bounds.Dx(), Height: bounds.Dy(), Margin: int(float64(margin) * scale * 0.8)}
	for i, b := range panels {
		s := slots[i]
		c := s.axes
		d := b.plot.DataCanvas(c)
		c = draw.Crop(c, left-(d.Min.X-c.Min.X), (c.Max.X-d.Max.X)-right, 0, 0)
		d = b.plot.DataCanvas(c)
		drawLines(dc, panelSty, s.titleLines, margin, s.legendTop+block(panelSty, s.titleLines)+4)
		lr := drawLegend(dc, legendSty, b.legend, d.Min.X, s.legendTop, inner-(d.Min.X-margin))
		b.plot.Draw(c)
		pl := PanelLayout{Data: px(d.Rectangle)}
		if len(b.legend) > 0 {
			pl.Legend = px(lr)
		}
		for _, e := range b.legend {
			pl.Colours = append(pl.Colours, e.colour)
		}
		lay.Panels = append(lay.Panels, pl)
	}

	out, err := os.Create(path)
	if err != nil {
		return Layout{}, fmt.Errorf("chart: %w", err)
	}
	_, werr := vgimg.PngCanvas{Canvas: img}.WriteTo(out)
	if err := errors.Join(werr, out.Close()); err != nil {
		return Layout{}, fmt.Errorf("chart %s: %w", path, err)
	}
	return lay, nil
}

// wrap breaks s at spaces into lines no wider than width.
func wrap(sty text.Style, s string, width vg.Length) []string {
	if s == "" {
		return nil
	}
	var lines []string
	cur := ""
	for _, w := range strings.Fields(s) {
		next := w
		if cur != "" {
			next = cur + " " + w
		}
		if cur != "" && sty.Width(next) > width {
			lines = append(lines, cur)
			next = w
		}
		cur = next
	}
	return append(lines, cur)
}

func lineHeight(sty text.Style) vg.Length {
	e := sty.FontExtents()
	return e.Height
}

func block(sty text.Style, lines []string) vg.Length {
	return vg.Length(len(lines)) * lineHeight(sty)
}

// drawLines draws left-aligned lines from top down and returns the y
// below them.
func drawLines(dc draw.Canvas, sty text.Style, lines []string, x, top vg.Length) vg.Length {
	sty.YAlign = draw.YTop
	for _, l := range lines {
		dc.FillText(sty, vg.Point{X: x, Y: top}, l)
		top -= lineHeight(sty)
	}
	return top
}

// legendRows places the entries left to right, wrapping at width.
func legendRows(sty text.Style, es []entry, width vg.Length) [][]entry {
	var rows [][]entry
	var x vg.Length
	for _, e := range es {
		w := legendSwatch + 4 + sty.Width(e.name)
		if len(rows) == 0 || (x > 0 && x+w > width) {
			rows = append(rows, nil)
			x = 0
		}
		rows[len(rows)-1] = append(rows[len(rows)-1], e)
		x += w + legendGap
	}
	return rows
}

func legendRowHeight(sty text.Style) vg.Length { return lineHeight(sty) + 4 }

func legendHeight(sty text.Style, es []entry, width vg.Length) vg.Length {
	if len(es) == 0 {
		return 0
	}
	return vg.Length(len(legendRows(sty, es, width)))*legendRowHeight(sty) + 6
}

// drawLegend draws the entries in rows below top, from x, and returns
// the rectangle they cover.
func drawLegend(dc draw.Canvas, sty text.Style, es []entry, x, top, width vg.Length) vg.Rectangle {
	rh := legendRowHeight(sty)
	r := vg.Rectangle{Min: vg.Point{X: x, Y: top}, Max: vg.Point{X: x, Y: top}}
	sty.YAlign = draw.YCenter
	for ri, row := range legendRows(sty, es, width) {
		cx := x
		mid := top - rh*vg.Length(ri) - rh/2
		for _, e := range row {
			icon := draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
				Min: vg.Point{X: cx, Y: mid - rh/2 + 2}, Max: vg.Point{X: cx + legendSwatch, Y: mid + rh/2 - 2}}}
			for _, t := range e.thumbs {
				t.Thumbnail(&icon)
			}
			dc.FillText(sty, vg.Point{X: cx + legendSwatch + 4, Y: mid}, e.name)
			cx += legendSwatch + 4 + sty.Width(e.name)
			r.Max.X = max(r.Max.X, cx)
			cx += legendGap
		}
		r.Min.Y = mid - rh/2
	}
	return r
}

// axisStyle gives the plot's axes the figure's fonts and colours; the
// plot has no title (Render draws panel titles, where they can wrap).
func axisStyle(p *plot.Plot, xlabel, ylabel string) {
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sans, 11)
		a.Label.TextStyle.Color = textColor
		a.Tick.Label.Font = font.From(sans, 10)
		a.Tick.Label.Color = textColor
		a.LineStyle.Color, a.Tick.LineStyle.Color = subtle, subtle
		a.Tick.Length = 4
		a.Label.Padding = 4
	}
	p.X.Label.Text, p.Y.Label.Text = xlabel, ylabel
}
