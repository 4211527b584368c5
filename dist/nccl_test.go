package dist

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"purpcode/kernels"
	"purpcode/kernels/ptxemu"
)

// TestNCCLPaddedLayout: the padded layout of NCCL's equal-count
// collectives keeps ChunkRange's ownership: chunk r starts slot r, the
// padding is zero, and unpadding restores the buffer, for every length
// around the multiples of the rank count.
func TestNCCLPaddedLayout(t *testing.T) {
	for _, tc := range []struct{ n, size, want int }{
		{0, 3, 0}, {1, 1, 1}, {1, 4, 4}, {6, 3, 6}, {7, 3, 9}, {8, 3, 9}, {9, 3, 9}, {10, 4, 12},
	} {
		if got := PaddedLen(tc.n, tc.size); got != tc.want {
			t.Errorf("PaddedLen(%d, %d) = %d, want %d", tc.n, tc.size, got, tc.want)
		}
	}
	for size := 1; size <= 5; size++ {
		for n := 0; n <= 3*size+1; n++ {
			src := make([]float32, n)
			for i := range src {
				src[i] = float32(i + 1)
			}
			padded := make([]float32, PaddedLen(n, size))
			for i := range padded {
				padded[i] = -1 // stale contents: padding must be cleared
			}
			PadChunks(padded, src, size)
			slot := len(padded) / size
			for r := range size {
				lo, hi := ChunkRange(n, size, r)
				got := padded[r*slot : (r+1)*slot]
				want := append(slices.Clone(src[lo:hi]), make([]float32, slot-(hi-lo))...)
				if !slices.Equal(got, want) {
					t.Fatalf("n=%d size=%d: slot %d = %v, want %v", n, size, r, got, want)
				}
			}
			back := make([]float32, n)
			UnpadChunks(back, padded, size)
			if !slices.Equal(back, src) {
				t.Fatalf("n=%d size=%d: unpadded %v, want %v", n, size, back, src)
			}
		}
	}
}

// ncclStandIn is a stand-in libnccl for one process without a GPU. Its
// collectives touch no memory: with one rank, in place, NCCL's result is
// the input, so the host staging around them is tested whole on the
// emulated device. It refuses (ncclInvalidArgument) any call whose
// pointers are not the in-place layout NCCL documents (reduce-scatter:
// recv = send + rank*count elements; all-gather: send = recv +
// rank*count), and an id that is not the first one it created, so a rank
// that made its own id instead of receiving rank 0's fails. With
// PURPCODE_FAKE_NCCL_LOST set, its communicators report a lost peer.
const ncclStandIn = `
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
typedef struct { char internal[128]; } ncclUniqueId;
typedef struct { int nranks, rank; } fakeComm;
int purpcode_nccl_stand_in = 1;
static int ids;
static char idByte(int i, int k) { return (char)(i * 7 + k); }
static size_t esize(int dt) { return dt <= 1 ? 1 : dt == 6 || dt == 9 ? 2 : dt <= 3 || dt == 7 ? 4 : 8; }
int ncclGetVersion(int *v) { *v = 22105; return 0; }
int ncclGetUniqueId(ncclUniqueId *id) { ids++; for (int i = 0; i < 128; i++) id->internal[i] = idByte(i, ids); return 0; }
int ncclCommInitRank(void **comm, int n, ncclUniqueId id, int rank) {
	for (int i = 0; i < 128; i++) if (id.internal[i] != idByte(i, 1)) return 4;
	fakeComm *c = malloc(sizeof *c);
	c->nranks = n; c->rank = rank; *comm = c;
	return 0;
}
int ncclAllReduce(const void *s, void *r, size_t n, int dt, int op, void *comm, void *st) { return s == r && op == 0 ? 0 : 4; }
int ncclReduceScatter(const void *s, void *r, size_t n, int dt, int op, void *comm, void *st) {
	return (const char *)r == (const char *)s + ((fakeComm *)comm)->rank * n * esize(dt) && op == 0 ? 0 : 4;
}
int ncclAllGather(const void *s, void *r, size_t n, int dt, void *comm, void *st) {
	return (const char *)s == (const char *)r + ((fakeComm *)comm)->rank * n * esize(dt) ? 0 : 4;
}
int ncclBroadcast(const void *s, void *r, size_t n, int dt, int root, void *comm, void *st) { return s == r && dt == 1 ? 0 : 4; }
int ncclCommDestroy(void *comm) { free(comm); return 0; }
int ncclCommAbort(void *comm) { free(comm); return 0; }
const char *ncclGetErrorString(int r) { return r == 6 ? "remote process exited or there was a network error" : r == 4 ? "invalid argument" : "error"; }
int ncclCommGetAsyncError(void *comm, int *res) { *res = getenv("PURPCODE_FAKE_NCCL_LOST") ? 6 : 0; return 0; }
`

// loadStandIn builds the stand-in (skipping without gcc or cgo) and
// loads it.
func loadStandIn(t *testing.T) *kernels.NCCL {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc to build the stand-in NCCL")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "nccl.c")
	if err := os.WriteFile(src, []byte(ncclStandIn), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-std=c99", "-o", filepath.Join(dir, "libnccl.so.2"), src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	lib, err := kernels.LoadNCCL(kernels.CUDALibOptions{Dir: dir})
	if err != nil {
		if strings.Contains(err.Error(), "cgo") {
			t.Skipf("stand-in NCCL: %v", err)
		}
		t.Fatal(err)
	}
	return lib
}

// emulatedContext is a context on the PTX emulator, destroyed with the
// test.
func emulatedContext(t *testing.T) *kernels.Context {
	t.Helper()
	ctx, err := kernels.NewEmulatedContext(ptxemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctx.Destroy() })
	return ctx
}

// joinStandIn forms an NCCL group of n ranks over a local CPU group, rank
// r on emulated context ctxs[r].
func joinStandIn(t *testing.T, lib *kernels.NCCL, n int) (comms []*NCCLComm, ctxs []*kernels.Context) {
	t.Helper()
	ctx := context.Background()
	cpus, err := ConnectLocal(ctx, n, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range cpus {
			c.Close()
		}
	})
	ctxs = make([]*kernels.Context, n)
	for r := range ctxs {
		ctxs[r] = emulatedContext(t)
	}
	out := make([]*NCCLComm, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() { out[r], errs[r] = NewNCCL(ctx, cpus[r], lib, kernels.NewNCCLDevice(ctxs[r])) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for r, c := range out {
		if c.Rank() != r || c.Size() != n || c.Timeout != 20*time.Second {
			t.Errorf("rank %d: Rank %d Size %d Timeout %s", r, c.Rank(), c.Size(), c.Timeout)
		}
	}
	return out, ctxs
}

// TestNCCLStandInOneRank runs every collective of one rank through the
// staging path: results in place, lengths checked, Close final.
func TestNCCLStandInOneRank(t *testing.T) {
	lib := loadStandIn(t)
	cs, _ := joinStandIn(t, lib, 1)
	c := cs[0]
	ctx := context.Background()

	f32 := []float32{1.5, -2, 3.25}
	if err := c.AllReduceSum(ctx, f32); err != nil || !slices.Equal(f32, []float32{1.5, -2, 3.25}) {
		t.Errorf("AllReduceSum: %v %v", f32, err)
	}
	f64 := []float64{1e300, 2}
	if err := c.AllReduceSumF64(ctx, f64); err != nil || !slices.Equal(f64, []float64{1e300, 2}) {
		t.Errorf("AllReduceSumF64: %v %v", f64, err)
	}
	bf := []uint16{0x3f80, 0xc000, 0x4040}
	if err := c.AllReduceSumBF16(ctx, bf); err != nil || !slices.Equal(bf, []uint16{0x3f80, 0xc000, 0x4040}) {
		t.Errorf("AllReduceSumBF16: %x %v", bf, err)
	}
	out := make([]float32, 3)
	if err := c.ReduceScatterSum(ctx, f32, out); err != nil || !slices.Equal(out, f32) {
		t.Errorf("ReduceScatterSum: %v %v", out, err)
	}
	gathered := make([]uint16, 3)
	if err := c.AllGatherBF16(ctx, bf, gathered); err != nil || !slices.Equal(gathered, bf) {
		t.Errorf("AllGatherBF16: %x %v", gathered, err)
	}
	msg := []byte("unique id")
	if err := c.Broadcast(ctx, msg, 0); err != nil || string(msg) != "unique id" {
		t.Errorf("Broadcast: %q %v", msg, err)
	}
	if err := c.Barrier(ctx); err != nil {
		t.Errorf("Barrier: %v", err)
	}
	// A larger buffer grows the staging buffers.
	big := make([]float32, 1<<12)
	for i := range big {
		big[i] = float32(i)
	}
	if err := c.AllReduceSum(ctx, big); err != nil || big[4095] != 4095 {
		t.Errorf("AllReduceSum of 4096: %v %v", big[4095], err)
	}

	// Length mismatches name both lengths and break nothing.
	if err := c.ReduceScatterSum(ctx, f32, make([]float32, 2)); err == nil ||
		!strings.Contains(err.Error(), "rank 0's output has 2 elements, want 3 (chunk of 3 over 1 ranks)") {
		t.Errorf("short output: %v", err)
	}
	if err := c.AllGather(ctx, make([]float32, 4), make([]float32, 3)); err == nil ||
		!strings.Contains(err.Error(), "rank 0's input has 4 elements, want 3 (chunk of 3 over 1 ranks)") {
		t.Errorf("long input: %v", err)
	}
	if err := c.Broadcast(ctx, msg, 1); err == nil || !strings.Contains(err.Error(), "root 1 outside 1 ranks") {
		t.Errorf("root 1: %v", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Barrier(done); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "nccl barrier #") {
		t.Errorf("barrier with an ended context: %v", err)
	}
	if err := c.Barrier(ctx); err != nil {
		t.Errorf("the checks broke the communicator: %v", err)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.AllReduceSum(ctx, f32); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestNCCLStandInTwoRanks: rank 1 receives rank 0's id over the CPU
// group (the stand-in refuses any other id), and the padded layouts of
// uneven chunks reach NCCL in place: the stand-in sums nothing, so each
// rank's output is its own contribution in ChunkRange's place.
func TestNCCLStandInTwoRanks(t *testing.T) {
	lib := loadStandIn(t)
	cs, devs := joinStandIn(t, lib, 2)
	ctx := context.Background()
	in := []float32{1, 2, 3, 4, 5} // chunks [0,3) and [3,5), padded to 2 slots of 3
	for r, c := range cs {
		lo, hi := ChunkRange(len(in), 2, r)
		out := make([]float32, hi-lo)
		if err := c.ReduceScatterSum(ctx, in, out); err != nil || !slices.Equal(out, in[lo:hi]) {
			t.Errorf("rank %d: ReduceScatterSum = %v, %v; want %v", r, out, err, in[lo:hi])
		}
		gathered := make([]float32, len(in))
		if err := c.AllGather(ctx, in[lo:hi], gathered); err != nil || !slices.Equal(gathered[lo:hi], in[lo:hi]) {
			t.Errorf("rank %d: AllGather = %v, %v; want %v at [%d,%d)", r, gathered, err, in[lo:hi], lo, hi)
		}
		// On device memory the caller pads: 2 blocks of 3, in place.
		p, err := devs[r].Upload(make([]float32, 6))
		if err != nil {
			t.Fatal(err)
		}
		d := c.Device()
		for name, err := range map[string]error{
			"AllReduceDevice":     d.AllReduceDevice(ctx, p, 6, kernels.NCCLFloat32),
			"ReduceScatterDevice": d.ReduceScatterDevice(ctx, p, 3, kernels.NCCLFloat32),
			"AllGatherDevice":     d.AllGatherDevice(ctx, p, 3, kernels.NCCLBfloat16),
			"BroadcastDevice":     d.BroadcastDevice(ctx, p, 24, kernels.NCCLUint8, 1),
		} {
			if err != nil {
				t.Errorf("rank %d: %s: %v", r, name, err)
			}
		}
		if err := d.BroadcastDevice(ctx, p, 6, kernels.NCCLFloat32, 2); err == nil || !strings.Contains(err.Error(), "root 2 outside 2 ranks") {
			t.Errorf("rank %d: BroadcastDevice from rank 2: %v", r, err)
		}
	}
	// Staging bounded to 8 bytes: every host collective runs piece by
	// piece (2 floats per piece; reduce-scatter and all-gather 1 float of
	// each rank's block per piece) and must land the same layout.
	long := make([]float32, 11)
	for i := range long {
		long[i] = float32(i + 1)
	}
	for r, c := range cs {
		c.Device().Staging = 8
		lo, hi := ChunkRange(len(long), 2, r)
		out := make([]float32, hi-lo)
		if err := c.ReduceScatterSum(ctx, long, out); err != nil || !slices.Equal(out, long[lo:hi]) {
			t.Errorf("rank %d, pieces: ReduceScatterSum = %v, %v; want %v", r, out, err, long[lo:hi])
		}
		gathered := make([]float32, len(long))
		if err := c.AllGather(ctx, long[lo:hi], gathered); err != nil || !slices.Equal(gathered[lo:hi], long[lo:hi]) {
			t.Errorf("rank %d, pieces: AllGather = %v, %v; want %v at [%d,%d)", r, gathered, err, long[lo:hi], lo, hi)
		}
		sum := slices.Clone(long)
		if err := c.AllReduceSum(ctx, sum); err != nil || !slices.Equal(sum, long) {
			t.Errorf("rank %d, pieces: AllReduceSum = %v, %v", r, sum, err)
		}
		msg := []byte("a message longer than one piece")
		if err := c.Broadcast(ctx, msg, r); err != nil || string(msg) != "a message longer than one piece" {
			t.Errorf("rank %d, pieces: Broadcast = %q, %v", r, msg, err)
		}
	}
	for _, c := range cs {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
}

// TestNCCLStandInLostPeer: a communicator that reports a lost peer fails
// the collective naming it and NCCL's words, and stays broken.
func TestNCCLStandInLostPeer(t *testing.T) {
	lib := loadStandIn(t)
	cs, _ := joinStandIn(t, lib, 1)
	c := cs[0]
	t.Setenv("PURPCODE_FAKE_NCCL_LOST", "1")
	ctx := context.Background()
	err := c.AllReduceSum(ctx, []float32{1})
	if err == nil || !strings.Contains(err.Error(), "dist: nccl allreduce #1: ncclAllReduce: NCCL communicator: remote process exited") {
		t.Fatalf("lost peer: %v", err)
	}
	if err2 := c.Barrier(ctx); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("after the failure: %v, want the first error", err2)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after an abort: %v", err)
	}
}

// TestNCCLNewNeedsLibrary: no library, no communicator, and a clear word.
func TestNCCLNewNeedsLibrary(t *testing.T) {
	cpus, err := ConnectLocal(context.Background(), 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cpus[0].Close()
	if _, err := NewNCCL(context.Background(), cpus[0], nil, kernels.NCCLDevice{}); err == nil || !strings.Contains(err.Error(), "needs a CPU communicator and a loaded NCCL") {
		t.Errorf("nil library: %v", err)
	}
}

// TestNCCLOpenNotFound: a rank without NCCL fails, naming the library and
// the folders searched, and so does every rank of its group, naming it.
func TestNCCLOpenNotFound(t *testing.T) {
	if lib, err := kernels.LoadNCCL(kernels.CUDALibOptions{}); err == nil {
		t.Skipf("NCCL %s is installed (%s): it would be found", lib.VersionString(), lib.Path)
	} else if strings.Contains(err.Error(), "without cgo") {
		t.Skipf("nothing is looked for: %v", err)
	}
	ctx := context.Background()
	cpus, err := ConnectLocal(ctx, 2, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range cpus {
			c.Close()
		}
	}()
	dir := t.TempDir()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			_, errs[r] = OpenNCCL(ctx, cpus[r], kernels.CUDALibOptions{Dir: dir}, kernels.NCCLDevice{})
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err == nil {
			t.Fatalf("rank %d: no error without NCCL", r)
		}
		msg := err.Error()
		for _, want := range []string{"dist: nccl: rank " + string(rune('0'+r)) + " of 2: ", "NCCL could not be loaded on ranks [0 1]",
			"libnccl.so.2 and libnccl.so not found; searched " + dir, "LD_LIBRARY_PATH"} {
			if !strings.Contains(msg, want) {
				t.Errorf("rank %d: message lacks %q:\n%s", r, want, msg)
			}
		}
	}
}
