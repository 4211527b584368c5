package dist

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// rendezvous runs Connect for each of opts concurrently (rank 0 listening
// on a fresh loopback port unless its MasterAddr is set) and returns the
// errors by position; comms that connect are closed.
func rendezvous(t *testing.T, opts ...Options) []error {
	t.Helper()
	var addr string
	for i := range opts {
		if opts[i].Rank == 0 && opts[i].MasterAddr == "" {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			opts[i].Listener, addr = l, l.Addr().String()
		}
	}
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i, o := range opts {
		if o.MasterAddr == "" {
			o.MasterAddr = addr
		}
		o.ConnectTimeout = cmpOr(o.ConnectTimeout, 20*time.Second)
		wg.Go(func() {
			c, err := Connect(context.Background(), o)
			if c != nil {
				c.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errs
}

func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one containing %q", what, parts)
		return
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %q does not contain %q", what, err, p)
		}
	}
}

func TestRendezvousWorldSizeMismatch(t *testing.T) {
	t.Parallel()
	errs := rendezvous(t, Options{Rank: 0, WorldSize: 3}, Options{Rank: 1, WorldSize: 2})
	wantErr(t, "rank 0", errs[0], "rank 1 has WORLD_SIZE 2 but rank 0 has 3")
	wantErr(t, "rank 1", errs[1], "rejected by rank 0", "rank 1 has WORLD_SIZE 2 but rank 0 has 3")
}

func TestRendezvousFingerprintMismatch(t *testing.T) {
	t.Parallel()
	a, b := Fingerprint([]byte("lr: 1e-5")), Fingerprint([]byte("lr: 2e-5"))
	errs := rendezvous(t, Options{Rank: 0, WorldSize: 3, Fingerprint: a}, Options{Rank: 1, WorldSize: 3, Fingerprint: a},
		Options{Rank: 2, WorldSize: 3, Fingerprint: b})
	for r, err := range errs {
		wantErr(t, fmt.Sprintf("rank %d", r), err, "rank 2's config fingerprint", "started with different configurations")
	}
}

func TestFingerprintSeparatesParts(t *testing.T) {
	if string(Fingerprint([]byte("ab"), []byte("c"))) == string(Fingerprint([]byte("a"), []byte("bc"))) {
		t.Fatal("moving a byte between parts does not change the fingerprint")
	}
}

func TestRendezvousDuplicateRank(t *testing.T) {
	t.Parallel()
	errs := rendezvous(t, Options{Rank: 0, WorldSize: 3}, Options{Rank: 1, WorldSize: 3}, Options{Rank: 1, WorldSize: 3})
	wantErr(t, "rank 0", errs[0], "duplicate RANK 1")
	for i := 1; i < 3; i++ {
		wantErr(t, "a rank 1", errs[i], "rejected by rank 0", "duplicate RANK 1")
	}
}

// TestRendezvousMissingRank: a rank that never starts is named by rank 0
// when its wait ends, and by the ranks that came, which wait a little
// longer to hear it.
func TestRendezvousMissingRank(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	errs := rendezvous(t, Options{Rank: 0, WorldSize: 3, ConnectTimeout: timeout}, Options{Rank: 1, WorldSize: 3, ConnectTimeout: timeout})
	wantErr(t, "rank 0", errs[0], "ranks [2] did not arrive within 2s")
	wantErr(t, "rank 1", errs[1], "rejected by rank 0", "ranks [2] did not arrive")
}

func TestRendezvousUnreachableMaster(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	errs := rendezvous(t, Options{Rank: 1, WorldSize: 2, MasterAddr: addr, ConnectTimeout: 300 * time.Millisecond})
	wantErr(t, "rank 1", errs[0], "rank 1: rendezvous at "+addr, "could not reach rank 0 at MASTER_ADDR:MASTER_PORT within 300ms", "connection refused")
}

func TestRendezvousPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	errs := rendezvous(t, Options{Rank: 0, WorldSize: 2, MasterAddr: l.Addr().String(), ConnectTimeout: time.Second})
	wantErr(t, "rank 0", errs[0], "port in use", "choose another MASTER_PORT")
}

func TestConnectBadRank(t *testing.T) {
	_, err := Connect(context.Background(), Options{Rank: 2, WorldSize: 2})
	wantErr(t, "rank 2 of 2", err, "RANK 2 is outside WORLD_SIZE 2")
}

// TestSingleRank: a world of one needs no network and every collective is
// the identity.
func TestSingleRank(t *testing.T) {
	c, err := Connect(context.Background(), Options{Rank: 0, WorldSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := runSuite(context.Background(), c, 1)
	if err != nil || len(d) == 0 {
		t.Fatalf("suite on one rank: %v", err)
	}
}
