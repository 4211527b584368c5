package dist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ConnectLocal forms a group of n ranks inside this process over loopback
// TCP, e.g. to run a data-parallel trainer's ranks as goroutines in a test
// or benchmark. timeout is each collective's deadline. On error every
// connection made is closed.
func ConnectLocal(ctx context.Context, n int, timeout time.Duration) ([]*TCPComm, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dist: local group: %w", err)
	}
	cs := make([]*TCPComm, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		o := Options{Rank: r, WorldSize: n, MasterAddr: l.Addr().String(), Timeout: timeout, ConnectTimeout: timeout}
		if r == 0 {
			o.Listener = l
		}
		wg.Go(func() { cs[r], errs[r] = Connect(ctx, o) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
		return nil, fmt.Errorf("dist: local group of %d: %w", n, err)
	}
	return cs, nil
}
