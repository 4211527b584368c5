package dist

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// benchElems is 64 MiB of fp32.
const benchElems = 16 << 20

// BenchmarkAllReduce64MB times an fp32 all-reduce of 64 MiB between two
// ranks in separate processes on this machine: this benchmark is rank 0,
// and rank 1 is this test binary started again (role "bench-peer").
// Bytes/s counts the buffer once per call, as torch's benchmarks do.
func BenchmarkAllReduce64MB(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	peer := exec.Command(os.Args[0], "-test.run=^$")
	peer.Env = append(os.Environ(), helperEnv+"=bench-peer", "RANK=1", "WORLD_SIZE=2",
		"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
	peer.Stderr = os.Stderr
	if err := peer.Start(); err != nil {
		b.Fatal(err)
	}
	defer peer.Wait()         //nolint:errcheck // its failure shows in the collectives
	defer peer.Process.Kill() //nolint:errcheck // only if the benchmark failed first
	ctx := context.Background()
	c, err := Connect(ctx, Options{Rank: 0, WorldSize: 2, MasterAddr: l.Addr().String(), Listener: l, ConnectTimeout: time.Minute, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]float32, benchElems)
	for i := range buf {
		buf[i] = float32(i%1000) * 0.001
	}
	// Warm up once (page faults, socket buffers), then tell the peer how
	// many timed calls follow.
	if err := c.AllReduceSum(ctx, buf); err != nil {
		b.Fatal(err)
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(b.N))
	if err := c.Broadcast(ctx, n[:], 0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4 * benchElems)
	b.ResetTimer()
	for range b.N {
		if err := c.AllReduceSum(ctx, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := c.Barrier(ctx); err != nil {
		b.Fatal(err)
	}
}

// benchPeer is rank 1 of BenchmarkAllReduce64MB.
func benchPeer(ctx context.Context, c Comm) int {
	buf := make([]float32, benchElems)
	for i := range buf {
		buf[i] = float32(i%1000) * 0.002
	}
	var n [8]byte
	err := c.AllReduceSum(ctx, buf)
	if err == nil {
		err = c.Broadcast(ctx, n[:], 0)
	}
	for i := uint64(0); err == nil && i < binary.LittleEndian.Uint64(n[:]); i++ {
		err = c.AllReduceSum(ctx, buf)
	}
	if err == nil {
		err = c.Barrier(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench peer:", err)
		return 1
	}
	return 0
}
