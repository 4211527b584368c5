package dist

import (
	"context"
	"math"
	"testing"
	"time"
)

// TestConnectLocalAllReduceF64: an in-process group sums float64 buffers
// in rank order in float64 (terms fp32 could not hold), the same bits on
// every rank.
func TestConnectLocalAllReduceF64(t *testing.T) {
	const p = 3
	cs, err := ConnectLocal(context.Background(), p, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	bufs := make([][]float64, p)
	for r := range p {
		bufs[r] = []float64{1, math.Ldexp(1, -40), float64(r), 0.1 * float64(r+1), -float64(r * r)}
	}
	want := make([]float64, len(bufs[0]))
	for i := range want {
		for r := range p {
			want[i] += bufs[r][i]
		}
	}
	errs := onAll(cs, func(c *TCPComm) error { return c.AllReduceSumF64(context.Background(), bufs[c.Rank()]) })
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		for i, v := range bufs[r] {
			if math.Float64bits(v) != math.Float64bits(want[i]) {
				t.Errorf("rank %d element %d: %v, want %v", r, i, v, want[i])
			}
		}
	}
}
