package dist

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"purpcode/internal/half"
)

// The process tests run this test binary again as ranks: TestMain sees
// helperEnv and runs the named role instead of the tests, with the launch
// environment (RANK, WORLD_SIZE, ...) parsed by ParseEnv like the command.
const (
	helperEnv   = "PURPCODE_DIST_TEST_ROLE"
	failRankEnv = "PURPCODE_DIST_TEST_FAIL_RANK" // role "fail": the rank that fails
	failModeEnv = "PURPCODE_DIST_TEST_FAIL_MODE" // role "fail": "exit" (status 3) or "kill" (SIGKILL)
	timeoutEnv  = "PURPCODE_DIST_TEST_TIMEOUT"   // per-call timeout, e.g. "30s"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role))
	}
	os.Exit(m.Run())
}

func runHelper(role string) int {
	if role == "signal" {
		// Only the launcher's forwarding reaches this rank (it has its own
		// process group), so "got" proves the forwarding.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		fmt.Println("ready")
		fmt.Printf("got %v\n", <-sigs)
		return 7
	}
	env, err := ParseEnv(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	o := env.Options()
	o.ConnectTimeout = 30 * time.Second
	o.Timeout = 30 * time.Second
	if s := os.Getenv(timeoutEnv); s != "" {
		if o.Timeout, err = time.ParseDuration(s); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	ctx := context.Background()
	c, err := Connect(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	switch role {
	case "collectives":
		for _, seed := range []uint64{1, 2} {
			d, err := runSuite(ctx, c, seed)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Printf("digest %d %x\n", seed, d)
		}
	case "loop":
		buf := make([]float32, 1<<18)
		for i := 0; ; i++ {
			if err := c.AllReduceSum(ctx, buf); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Printf("iter %d\n", i)
		}
	case "fail":
		victim, _ := strconv.Atoi(os.Getenv(failRankEnv))
		if c.Rank() != victim {
			fmt.Println("ready")
			select {} // until the launcher stops this rank
		}
		if os.Getenv(failModeEnv) == "kill" {
			syscall.Kill(os.Getpid(), syscall.SIGKILL) //nolint:errcheck
		}
		return 3
	case "bench-peer":
		return benchPeer(ctx, c)
	case "grid-loop":
		return gridLoop(ctx, c)
	default:
		fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
		return 2
	}
	return 0
}

// inputF32 is rank r's deterministic input: values spread over many
// binades, so that the order of a sum changes its rounding.
func inputF32(seed uint64, r, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, uint64(r)))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(41)-20))
	}
	return out
}

func inputBF16(seed uint64, r, n int) []uint16 {
	f := inputF32(seed, r, n)
	out := make([]uint16, n)
	for i, v := range f {
		out[i] = half.F32ToBF16(v)
	}
	return out
}

// serialSum is the reference: every rank's input, added in rank order.
func serialSum(seed uint64, p, n int) []float32 {
	return suiteInputs(seed, p, n).sum
}

// suiteData is every rank's inputs of one size and the reference sums.
type suiteData struct {
	in   [][]float32
	inB  [][]uint16
	sum  []float32
	sumB []uint16
}

func suiteInputs(seed uint64, p, n int) suiteData {
	d := suiteData{sum: make([]float32, n), sumB: make([]uint16, n)}
	acc := make([]float32, n)
	for r := range p {
		d.in = append(d.in, inputF32(seed, r, n))
		d.inB = append(d.inB, inputBF16(seed, r, n))
		for i := range n {
			if r == 0 {
				d.sum[i] = d.in[r][i]
			} else {
				d.sum[i] += d.in[r][i]
			}
			acc[i] += half.BF16ToF32(d.inB[r][i])
		}
	}
	for i, v := range acc {
		d.sumB[i] = half.F32ToBF16(v)
	}
	return d
}

// suiteSizes cover empty buffers, buffers shorter than the rank count and
// uneven chunks.
var suiteSizes = []int{0, 1, 3, 1000, 1<<12 + 5}

// runSuite runs every collective on c with the inputs of seed, checks each
// result bit for bit against the serial reference, and returns a digest of
// the results every rank shares (all-reduce, all-gather, broadcast).
func runSuite(ctx context.Context, c Comm, seed uint64) ([]byte, error) {
	p, r := c.Size(), c.Rank()
	h := sha256.New()
	for _, n := range suiteSizes {
		lo, hi := ChunkRange(n, p, r)
		d := suiteInputs(seed, p, n)
		fail := func(op string, i int, got, want any) error {
			return fmt.Errorf("rank %d of %d, n=%d, %s [%d] = %v, want %v", r, p, n, op, i, got, want)
		}

		buf := slices.Clone(d.in[r])
		if err := c.AllReduceSum(ctx, buf); err != nil {
			return nil, err
		}
		want := d.sum
		for i := range want {
			if math.Float32bits(buf[i]) != math.Float32bits(want[i]) {
				return nil, fail("allreduce", i, buf[i], want[i])
			}
		}
		binary.Write(h, binary.LittleEndian, buf) //nolint:errcheck // hashes do not fail

		bbuf := slices.Clone(d.inB[r])
		if err := c.AllReduceSumBF16(ctx, bbuf); err != nil {
			return nil, err
		}
		bwant := d.sumB
		for i := range bwant {
			if bbuf[i] != bwant[i] {
				return nil, fail("allreduce-bf16", i, bbuf[i], bwant[i])
			}
		}
		binary.Write(h, binary.LittleEndian, bbuf) //nolint:errcheck

		out := make([]float32, hi-lo)
		if err := c.ReduceScatterSum(ctx, d.in[r], out); err != nil {
			return nil, err
		}
		for i := range out {
			if math.Float32bits(out[i]) != math.Float32bits(want[lo+i]) {
				return nil, fail("reducescatter", lo+i, out[i], want[lo+i])
			}
		}
		bout := make([]uint16, hi-lo)
		if err := c.ReduceScatterSumBF16(ctx, d.inB[r], bout); err != nil {
			return nil, err
		}
		for i := range bout {
			if bout[i] != bwant[lo+i] {
				return nil, fail("reducescatter-bf16", lo+i, bout[i], bwant[lo+i])
			}
		}

		// All-gather: rank q contributes the first values of its input.
		gathered := make([]float32, n)
		if err := c.AllGather(ctx, d.in[r][:hi-lo], gathered); err != nil {
			return nil, err
		}
		bgathered := make([]uint16, n)
		if err := c.AllGatherBF16(ctx, d.inB[r][:hi-lo], bgathered); err != nil {
			return nil, err
		}
		for q := range p {
			qlo, qhi := ChunkRange(n, p, q)
			gwant, bgwant := d.in[q][:qhi-qlo], d.inB[q][:qhi-qlo]
			for i := range gwant {
				if math.Float32bits(gathered[qlo+i]) != math.Float32bits(gwant[i]) {
					return nil, fail("allgather", qlo+i, gathered[qlo+i], gwant[i])
				}
				if bgathered[qlo+i] != bgwant[i] {
					return nil, fail("allgather-bf16", qlo+i, bgathered[qlo+i], bgwant[i])
				}
			}
		}
		binary.Write(h, binary.LittleEndian, gathered)  //nolint:errcheck
		binary.Write(h, binary.LittleEndian, bgathered) //nolint:errcheck

		root := n % p
		msg := make([]byte, n)
		if r == root {
			copy(msg, asBytes(d.in[root]))
		}
		if err := c.Broadcast(ctx, msg, root); err != nil {
			return nil, err
		}
		if bwant := asBytes(d.in[root])[:n]; string(msg) != string(bwant) {
			return nil, fmt.Errorf("rank %d of %d, n=%d: broadcast from rank %d differs", r, p, n, root)
		}
		h.Write(msg)

		if err := c.Barrier(ctx); err != nil {
			return nil, err
		}
	}
	return h.Sum(nil), nil
}
