package charttest

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"

	"purpcode/internal/chart"
)

// slack is how far, in pixels, a line's width or a point's radius may
// reach past the data area it is drawn in.
const slack = 6

// minPixels is how many pixels of a colour count as "drawn".
const minPixels = 4

// Check decodes the PNG at path and checks it against the layout
// chart.Render returned for it; it returns every violation found.
func Check(path string, l chart.Layout) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	return CheckImage(img, l)
}

// CheckImage is Check on a decoded image.
func CheckImage(img image.Image, l chart.Layout) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	b := img.Bounds()
	if b.Dx() != l.Width || b.Dy() != l.Height {
		return fmt.Errorf("image is %dx%d, layout says %dx%d", b.Dx(), b.Dy(), l.Width, l.Height)
	}
	if l.Margin < 1 {
		fail("layout has no blank margin")
	}
	// Anything clipped at the canvas edge crosses the margin.
	inner := b.Inset(l.Margin)
	if n := countWhere(img, b, func(p image.Point, c color.RGBA) bool { return !p.In(inner) && !isBackground(c) }); n > 0 {
		fail("%d non-background pixels in the %d px margin: something runs off the canvas", n, l.Margin)
	}
	var allowed []image.Rectangle
	var colours []color.RGBA
	for i, p := range l.Panels {
		data := p.Data.Inset(-slack)
		if !p.Data.In(inner) || p.Data.Empty() {
			fail("panel %d: data area %v not inside the canvas %v", i, p.Data, inner)
		}
		if !p.Legend.Empty() {
			if !p.Legend.In(inner) {
				fail("panel %d: legend %v not inside the canvas %v", i, p.Legend, inner)
			}
			for j, q := range l.Panels {
				if p.Legend.Overlaps(q.Data) {
					fail("panel %d: legend %v overlaps panel %d's data area %v", i, p.Legend, j, q.Data)
				}
			}
		}
		if blank := countWhere(img, p.Data, func(_ image.Point, c color.RGBA) bool { return !isBackground(c) }); blank == 0 {
			fail("panel %d: data area is blank", i)
		}
		for k, c := range p.Colours {
			if n := countColour(img, p.Legend, c); n < minPixels {
				fail("panel %d: legend entry %d colour %v not in the legend (%d px)", i, k, c, n)
			}
			if n := countColour(img, data, c); n < minPixels {
				fail("panel %d: legend entry %d colour %v not drawn in the data area (%d px)", i, k, c, n)
			}
		}
		allowed = append(allowed, data, p.Legend)
		colours = append(colours, p.Colours...)
	}
	stray := countWhere(img, b, func(p image.Point, c color.RGBA) bool {
		for _, r := range allowed {
			if p.In(r) {
				return false
			}
		}
		for _, s := range colours {
			if near(c, s) {
				return true
			}
		}
		return false
	})
	if stray > 0 {
		fail("%d pixels of series colours outside every data area and legend", stray)
	}
	return errors.Join(errs...)
}

// Colours lists the distinct colours among want that are drawn (at least
// a few pixels) inside r: a test's count of what a legend or data area
// really shows.
func Colours(img image.Image, r image.Rectangle, want []color.RGBA) []color.RGBA {
	var out []color.RGBA
	for _, c := range want {
		if countColour(img, r, c) >= minPixels {
			out = append(out, c)
		}
	}
	return out
}

// Load decodes the PNG at path.
func Load(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return img, nil
}

func rgba(img image.Image, x, y int) color.RGBA {
	return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
}

func isBackground(c color.RGBA) bool { return c.R >= 250 && c.G >= 250 && c.B >= 250 }

// near: anti-aliasing leaves a fully covered pixel within a step or two
// of its colour.
func near(a, b color.RGBA) bool {
	d := func(x, y uint8) int { return max(int(x)-int(y), int(y)-int(x)) }
	return d(a.R, b.R) <= 3 && d(a.G, b.G) <= 3 && d(a.B, b.B) <= 3
}

func countColour(img image.Image, r image.Rectangle, c color.RGBA) int {
	return countWhere(img, r, func(_ image.Point, p color.RGBA) bool { return near(p, c) })
}

func countWhere(img image.Image, r image.Rectangle, f func(image.Point, color.RGBA) bool) int {
	r = r.Intersect(img.Bounds())
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if f(image.Point{X: x, Y: y}, rgba(img, x, y)) {
				n++
			}
		}
	}
	return n
}
