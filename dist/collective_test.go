package dist

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// connectAll starts p ranks in goroutines over loopback.
func connectAll(t *testing.T, p int) []*TCPComm {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs := make([]*TCPComm, p)
	errs := make([]error, p)
	var wg sync.WaitGroup
	for r := range p {
		o := Options{Rank: r, WorldSize: p, MasterAddr: l.Addr().String(), ConnectTimeout: 20 * time.Second, Timeout: 20 * time.Second}
		if r == 0 {
			o.Listener = l
		}
		wg.Go(func() { cs[r], errs[r] = Connect(context.Background(), o) })
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	return cs
}

func TestAllReduceMatchesSerialSum(t *testing.T) {
	const p = 3
	cs := connectAll(t, p)
	for _, n := range []int{0, 1, 7, 1000} {
		bufs := make([][]float32, p)
		want := make([]float32, n)
		for r := range p {
			bufs[r] = make([]float32, n)
			for i := range n {
				bufs[r][i] = float32(i*(r+1)) * 0.1
			}
		}
		for i := range n {
			s := bufs[0][i]
			for r := 1; r < p; r++ {
				s += bufs[r][i]
			}
			want[i] = s
		}
		var wg sync.WaitGroup
		errs := make([]error, p)
		for r := range p {
			wg.Go(func() { errs[r] = cs[r].AllReduceSum(context.Background(), bufs[r]) })
		}
		wg.Wait()
		for r := range p {
			if errs[r] != nil {
				t.Fatalf("n=%d rank %d: %v", n, r, errs[r])
			}
			for i := range n {
				if bufs[r][i] != want[i] {
					t.Fatalf("n=%d rank %d [%d] = %v, want %v", n, r, i, bufs[r][i], want[i])
				}
			}
		}
	}
}
