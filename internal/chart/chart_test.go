package chart_test

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/internal/chart"
	"purpcode/internal/chart/charttest"
)

// keep copies a rendered PNG to $CHART_OUT when set, to look at.
func keep(t *testing.T, path string) {
	t.Helper()
	dir := os.Getenv("CHART_OUT")
	if dir == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func render(t *testing.T, name string, f chart.Figure) (string, chart.Layout) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	l, err := chart.Render(path, f)
	if err != nil {
		t.Fatal(err)
	}
	keep(t, path)
	if err := charttest.Check(path, l); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return path, l
}

func steps(n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = float64(i + 1)
	}
	return x
}

func TestPNGLinesGapsAndMarkers(t *testing.T) {
	x := steps(60)
	loss := make([]float64, 60)
	sparse := make([]float64, 60)
	nan := make([]float64, 60)
	for i := range loss {
		loss[i] = 2*math.Exp(-float64(i)/20) + 0.3*math.Sin(float64(i)*1.7)
		sparse[i], nan[i] = math.NaN(), math.NaN()
	}
	// Measured at steps 1-20 and 41-60 only: nothing may join step 20 to 41.
	gapped := make([]float64, 60)
	for i := range gapped {
		gapped[i] = 0.5
		if i >= 20 && i < 40 {
			gapped[i] = math.NaN()
		}
	}
	sparse[19], sparse[39], sparse[59] = 1.5, 1.0, 0.8
	path, l := render(t, "lines.png", chart.Figure{
		Title: "A title long enough that it has to wrap onto a second line at this figure's width, which a clipped title would not",
		Panels: []chart.Panel{
			&chart.Lines{Title: "Loss", XLabel: "optimizer step", YLabel: "loss (nats/token)",
				Series:  []chart.Series{{Name: "train loss", X: x, Y: loss, Smooth: true}, {Name: "held-out loss", X: x, Y: sparse, Points: true}},
				Markers: []chart.Marker{{X: 20, Label: "epoch 1"}, {X: 60, Label: "epoch 3"}}},
			&chart.Lines{Title: "Gapped", XLabel: "optimizer step", YLabel: "reward", YFixed: true, YMin: 0, YMax: 1,
				Series: []chart.Series{{Name: "sampled", X: x, Y: gapped}, {Name: "never measured", X: x, Y: nan}}},
		},
	})
	if len(l.Panels) != 2 || len(l.Panels[0].Colours) != 3 || len(l.Panels[1].Colours) != 1 {
		t.Fatalf("legend entries: %+v (want raw + smoothed + held-out, then one: an empty series has none)", l.Panels)
	}
	img, err := charttest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := charttest.Colours(img, l.Panels[0].Legend, l.Panels[0].Colours); len(got) != 3 {
		t.Errorf("legend shows %d of 3 series colours", len(got))
	}
	// Steps 25-35 lie well inside the gap: no pixel of the series there.
	d := l.Panels[1].Data
	col := func(step float64) int { return d.Min.X + int((step-1)/59*float64(d.Dx())) }
	gap := image.Rect(col(25), d.Min.Y, col(35), d.Max.Y)
	if got := charttest.Colours(img, gap, l.Panels[1].Colours); len(got) != 0 {
		t.Errorf("the line joins across the unmeasured steps")
	}
	if got := charttest.Colours(img, image.Rect(col(5), d.Min.Y, col(15), d.Max.Y), l.Panels[1].Colours); len(got) != 1 {
		t.Errorf("the measured steps are not drawn")
	}
	// The title wrapped instead of running off the canvas (Check saw the
	// margin blank); the first panel starts below two title lines.
	if l.Panels[0].Legend.Min.Y < 60 {
		t.Errorf("first legend at y=%d: title not wrapped above it", l.Panels[0].Legend.Min.Y)
	}
}

func TestPNGBars(t *testing.T) {
	path, l := render(t, "bars.png", chart.Figure{
		Title: "Before / after",
		Panels: []chart.Panel{&chart.Bars{
			Title: "Test split", ValueLabel: "share of prompts", Percent: true,
			Categories: []string{"insecure-variant rate ↓", "tests-pass rate ↑", "benign over-refusal rate ↓"},
			Groups: []chart.Group{
				{Name: "base", Values: []float64{0.7, 1, math.NaN()}},
				{Name: "sft", Values: []float64{0.2, 0.95, 0}},
				{Name: "rl", Values: []float64{0, 0, 0}}, // all-zero: still visible
			},
		}},
	})
	if len(l.Panels[0].Colours) != 3 {
		t.Fatalf("legend entries %d, want 3", len(l.Panels[0].Colours))
	}
	img, err := charttest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// A 100% bar ends at the axis's right end, not short of a 130% axis.
	d := l.Panels[0].Data
	right := image.Rect(d.Max.X-8, d.Min.Y, d.Max.X, d.Max.Y)
	if got := charttest.Colours(img, right, l.Panels[0].Colours[:1]); len(got) != 1 {
		t.Errorf("the 100%% bar does not reach the end of the axis")
	}
	if _, err := chart.Render(filepath.Join(t.TempDir(), "x.png"), chart.Figure{Panels: []chart.Panel{&chart.Bars{
		Categories: []string{"a"}, Groups: []chart.Group{{Name: "g", Values: []float64{1, 2}}}}}}); err == nil {
		t.Error("mismatched group accepted")
	}
}

func TestPNGShortRunIsNotSmoothed(t *testing.T) {
	_, l := render(t, "short.png", chart.Figure{Panels: []chart.Panel{&chart.Lines{
		Title: "Ten steps", XLabel: "step", YLabel: "reward",
		Series: []chart.Series{{Name: "reward", X: steps(10), Y: []float64{1, 3, 2, 4, 3, 5, 4, 6, 5, 7}, Smooth: true}}}}})
	// An EMA over one step would be the raw line drawn twice.
	if n := len(l.Panels[0].Colours); n != 1 {
		t.Fatalf("%d legend entries for a 10-step series, want 1", n)
	}
}

// The checker itself must catch what it is there to catch.
func TestPNGCheckCatchesFaults(t *testing.T) {
	path, l := render(t, "fault.png", chart.Figure{Title: "t", Panels: []chart.Panel{&chart.Lines{
		Title: "p", XLabel: "x", YLabel: "y", Series: []chart.Series{{Name: "s", X: steps(3), Y: []float64{1, 2, 3}}}}}})
	img, err := charttest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rgba := image.NewRGBA(img.Bounds())
	draw.Draw(rgba, rgba.Bounds(), img, image.Point{}, draw.Src)

	overlap := l
	overlap.Panels = []chart.PanelLayout{l.Panels[0]}
	overlap.Panels[0].Legend = l.Panels[0].Data.Inset(10)
	if err := charttest.CheckImage(rgba, overlap); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("legend over data not caught: %v", err)
	}

	edge := image.NewRGBA(rgba.Bounds())
	draw.Draw(edge, edge.Bounds(), rgba, image.Point{}, draw.Src)
	edge.Set(0, edge.Bounds().Dy()/2, color.Black)
	if err := charttest.CheckImage(edge, l); err == nil || !strings.Contains(err.Error(), "margin") {
		t.Errorf("ink at the canvas edge not caught: %v", err)
	}

	stray := image.NewRGBA(rgba.Bounds())
	draw.Draw(stray, stray.Bounds(), rgba, image.Point{}, draw.Src)
	for x := 20; x < 30; x++ {
		stray.Set(x, l.Height-20, l.Panels[0].Colours[0])
	}
	if err := charttest.CheckImage(stray, l); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("series colour outside the plot not caught: %v", err)
	}

	missing := l
	missing.Panels = []chart.PanelLayout{l.Panels[0]}
	missing.Panels[0].Colours = append([]color.RGBA{}, l.Panels[0].Colours...)
	missing.Panels[0].Colours = append(missing.Panels[0].Colours, chart.Colour(5))
	if err := charttest.CheckImage(rgba, missing); err == nil || !strings.Contains(err.Error(), "not in the legend") {
		t.Errorf("a legend entry that is not drawn not caught: %v", err)
	}
}

func TestEMA(t *testing.T) {
	got := chart.EMA([]float64{1, math.NaN(), 1, 1}, 3)
	if got[0] != 1 || !math.IsNaN(got[1]) || got[3] != 1 {
		t.Fatalf("debiased EMA of a constant: %v", got)
	}
	s := chart.EMA([]float64{0, 10}, 3) // weight 0.5: (0.5*0.5*0 + 0.5*10) / 0.75
	if math.Abs(s[1]-10.0/1.5) > 1e-12 {
		t.Fatalf("EMA %v", s)
	}
}
