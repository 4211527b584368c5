package cuda

import (
	"strings"
	"testing"

	"purpcode/engine"
)

// TestBadIndicesPanicBeforeLaunch: ids, positions and gathered rows are
// checked on the host, so the op panics at once naming the offending row,
// without waiting for the device's error flag.
func TestBadIndicesPanicBeforeLaunch(t *testing.T) {
	b := OpenForTest(t)
	table := b.Alloc(engine.BF16, 8, 4)
	out := b.Alloc(engine.BF16, 3, 4)
	cos, sin := engine.RoPETable(4, 4, 10000)
	dc, ds := b.Alloc(engine.F32, cos.Shape...), b.Alloc(engine.F32, sin.Shape...)
	x := b.Alloc(engine.BF16, 3, 4)
	for _, c := range []struct {
		name, want string
		run        func()
	}{
		{"embedding", "index 8 at row 2", func() { b.EmbeddingForward(out, table, []int32{0, 7, 8}) }},
		{"negative id", "index -1 at row 0", func() { b.EmbeddingForward(out, table, []int32{-1, 0, 0}) }},
		{"gather", "index 9 at row 1", func() { b.GatherRows(out, table, []int{0, 9, 1}) }},
		{"rope", "position 4 at row 2", func() { b.RoPE(x, []int32{0, 3, 4}, 1, dc, ds, false) }},
	} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), c.want) {
					t.Errorf("%s: panic %v, want one naming %q", c.name, r, c.want)
				}
			}()
			c.run()
		}()
	}
}
