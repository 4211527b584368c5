package kernels

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"purpcode/kernels/ptxemu"
)

// TestNCCLLoad loads whatever NCCL this machine has. With one it reports
// its version; without one the error must say what was looked for.
func TestNCCLLoad(t *testing.T) {
	n, err := LoadNCCL(CUDALibOptions{})
	if err != nil {
		if !cgoAvailable {
			if !errors.Is(err, errNoCgo) {
				t.Errorf("without cgo: %v", err)
			}
			return
		}
		if !strings.HasPrefix(err.Error(), "nccl: ") || !strings.Contains(err.Error(), "libnccl.so.2") {
			t.Errorf("unclear error: %v", err)
		}
		t.Skipf("no NCCL here: %v", err)
	}
	t.Logf("NCCL %s (%s)", n.VersionString(), n.Path)
	if !regexp.MustCompile(`^2\.\d+\.\d+$`).MatchString(n.VersionString()) || n.Version < ncclMinVersion {
		t.Errorf("version %d = %q", n.Version, n.VersionString())
	}
	id, err := n.UniqueID()
	if err != nil || id == (NCCLUniqueID{}) {
		t.Errorf("UniqueID = %x, %v", id[:8], err)
	}
}

// TestNCCLNotFoundNamesWhereItLooked: an override folder holding a file
// that is not a library, and a Python prefix with no NCCL wheel.
func TestNCCLNotFoundNamesWhereItLooked(t *testing.T) {
	if !cgoAvailable {
		t.Skip("without cgo nothing is looked for")
	}
	if n, err := LoadNCCL(CUDALibOptions{}); err == nil {
		t.Skipf("NCCL %s is installed (%s): it would be found", n.VersionString(), n.Path)
	}
	dir, prefix := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "libnccl.so.2"), []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadNCCL(CUDALibOptions{Dir: dir, PythonPrefixes: []string{prefix}})
	if err == nil {
		t.Fatal("a text file loaded as NCCL")
	}
	msg := err.Error()
	for _, want := range []string{
		"nccl: libnccl.so.2 and libnccl.so not found; searched ",
		dir + " (--cuda-libs", "LD_LIBRARY_PATH", "/usr/local/cuda/lib64",
		filepath.Join(prefix, "lib", "python3*", "site-packages", "nvidia", "*", "lib"),
		filepath.Join(dir, "libnccl.so.2") + ":", // the first dlopen error names the bad file
		"pip install nvidia-nccl-cu12",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

// TestNCCLMissingSymbol: a real shared library that is not NCCL opens
// but is rejected for the missing entry point, and that is the error.
func TestNCCLMissingSymbol(t *testing.T) {
	if !cgoAvailable {
		t.Skip("needs cgo")
	}
	var libm string
	for _, p := range []string{"/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib/aarch64-linux-gnu/libm.so.6", "/lib64/libm.so.6"} {
		if fileExists(p) {
			libm = p
			break
		}
	}
	if libm == "" {
		t.Skip("no libm.so.6 to stand in for a wrong library")
	}
	data, err := os.ReadFile(libm)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "libnccl.so.2"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := LoadNCCL(CUDALibOptions{Dir: dir})
	if err == nil {
		if strings.HasPrefix(n.Path, dir) {
			t.Fatalf("libm accepted as NCCL")
		}
		t.Skipf("a real NCCL (%s) was found after the impostor", n.Path)
	}
	if !strings.Contains(err.Error(), "missing symbol ncclGetVersion") {
		t.Errorf("want the rejection of the impostor, got: %v", err)
	}
}

// fakeNCCL is a stand-in libnccl with NCCL's C ABI for the calls that need
// no GPU: it checks the shim's argument passing (version, the 128-byte
// unique id, error strings, the async-error out-parameter).
const fakeNCCL = `
#include <stddef.h>
typedef struct { char internal[128]; } ncclUniqueId;
int ncclGetVersion(int *v) { *v = FAKE_VERSION; return 0; }
int ncclGetUniqueId(ncclUniqueId *id) { for (int i = 0; i < 128; i++) id->internal[i] = (char)(i * 3 + 1); return 0; }
int ncclCommInitRank(void **comm, int n, ncclUniqueId id, int rank) { return 5; }
int ncclAllReduce(const void *s, void *r, size_t c, int d, int o, void *comm, void *st) { return 5; }
int ncclReduceScatter(const void *s, void *r, size_t c, int d, int o, void *comm, void *st) { return 5; }
int ncclAllGather(const void *s, void *r, size_t c, int d, void *comm, void *st) { return 5; }
int ncclBroadcast(const void *s, void *r, size_t c, int d, int root, void *comm, void *st) { return 5; }
int ncclCommDestroy(void *comm) { return 0; }
int ncclCommAbort(void *comm) { return 0; }
const char *ncclGetErrorString(int r) { return r == 6 ? "remote process exited or there was a network error" : "fake error"; }
const char *ncclGetLastError(void *comm) { return comm == NULL ? "peer rank 3 is gone" : ""; }
int ncclCommGetAsyncError(void *comm, int *res) { *res = comm == NULL ? 6 : 0; return 0; }
`

func buildFakeNCCL(t *testing.T, version string) string {
	t.Helper()
	if !cgoAvailable {
		t.Skip("needs cgo")
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc to build the fake NCCL")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "fake.c")
	if err := os.WriteFile(src, []byte(fakeNCCL), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cc, "-shared", "-fPIC", "-std=c99", "-DFAKE_VERSION="+version, "-o", filepath.Join(dir, "libnccl.so.2"), src).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return dir
}

func TestNCCLFakeLibrary(t *testing.T) {
	dir := buildFakeNCCL(t, "22105")
	n, err := LoadNCCL(CUDALibOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n.Path != filepath.Join(dir, "libnccl.so.2") || n.Version != 22105 || n.VersionString() != "2.21.5" {
		t.Errorf("loaded %s version %d (%s)", n.Path, n.Version, n.VersionString())
	}
	id, err := n.UniqueID()
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range id {
		if b != byte(i*3+1) {
			t.Fatalf("unique id byte %d = %d, want %d", i, b, byte(i*3+1))
		}
	}
	// A broken communicator reports its state with NCCL's own words.
	c := &NCCLComm{n: n, Size: 4}
	err = c.AsyncError()
	var ne *NCCLError
	if !errors.As(err, &ne) || ne.Code != 6 || !strings.Contains(err.Error(), "ncclRemoteError") ||
		!strings.Contains(err.Error(), "remote process exited") || !strings.Contains(err.Error(), "peer rank 3 is gone") {
		t.Errorf("AsyncError = %v", err)
	}
	if err := c.Broadcast(0, 0, 1, NCCLFloat32, 4, Stream{}); err == nil || !strings.Contains(err.Error(), "root 4 outside 4 ranks") {
		t.Errorf("Broadcast from rank 4 of 4: %v", err)
	}
	ctx, err := NewEmulatedContext(ptxemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Destroy()
	if _, err := n.InitRank(ctx, id, 2, 0); err == nil || !strings.Contains(err.Error(), "emulated device") {
		t.Errorf("InitRank on the emulator: %v", err)
	}
}

func TestNCCLTooOld(t *testing.T) {
	dir := buildFakeNCCL(t, "2708") // 2.7.8, before bf16
	_, err := LoadNCCL(CUDALibOptions{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "NCCL 2.7.8 is older than 2.10") {
		t.Errorf("NCCL 2.7.8: %v", err)
	}
}

// TestNCCLAwait drives the wait of a blocking collective through its
// three endings with a stream that completes only when told to: done, a
// context that ends (abort, then the stream stops), an asynchronous error
// of the communicator (abort too).
func TestNCCLAwait(t *testing.T) {
	healthy := func() error { return nil }
	t.Run("done", func(t *testing.T) {
		done := make(chan error, 1)
		done <- nil
		aborted := false
		if err := awaitNCCL(context.Background(), "ncclAllReduce", done, time.Millisecond, healthy, func() { aborted = true }); err != nil || aborted {
			t.Errorf("err %v, aborted %v", err, aborted)
		}
	})
	t.Run("stream error", func(t *testing.T) {
		done := make(chan error, 1)
		done <- errors.New("an illegal memory access was encountered")
		err := awaitNCCL(context.Background(), "ncclAllGather", done, time.Millisecond, healthy, func() { t.Error("aborted") })
		if err == nil || err.Error() != "ncclAllGather: an illegal memory access was encountered" {
			t.Errorf("err %v", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		done := make(chan error, 1)
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errors.New("no completion within 2s"))
		// The stream stops only once the communicator is aborted, as
		// NCCL's kernels do when they see the abort flag.
		err := awaitNCCL(ctx, "ncclReduceScatter", done, time.Hour, healthy, func() { done <- errors.New("aborted") })
		if err == nil || !strings.Contains(err.Error(), "ncclReduceScatter: no completion within 2s (communicator aborted)") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("lost peer", func(t *testing.T) {
		done := make(chan error, 1)
		lost := &NCCLError{Op: "NCCL communicator", Code: 6, Msg: "remote process exited"}
		polls := 0
		asyncErr := func() error {
			if polls++; polls < 3 {
				return nil
			}
			return lost
		}
		err := awaitNCCL(context.Background(), "ncclBroadcast", done, time.Millisecond, asyncErr, func() { done <- nil })
		var ne *NCCLError
		if !errors.As(err, &ne) || ne.Code != 6 || !strings.Contains(err.Error(), "ncclBroadcast: NCCL communicator: remote process exited (ncclRemoteError) (communicator aborted)") {
			t.Errorf("err %v after %d polls", err, polls)
		}
	})
	t.Run("broken after completion", func(t *testing.T) {
		done := make(chan error, 1)
		done <- nil
		lost := errors.New("peer gone")
		err := awaitNCCL(context.Background(), "ncclAllReduce", done, time.Hour, func() error { return lost }, func() { t.Error("aborted") })
		if !errors.Is(err, lost) {
			t.Errorf("err %v", err)
		}
	})
}

func TestNCCLDataTypeSize(t *testing.T) {
	for dt, want := range map[NCCLDataType]int{NCCLUint8: 1, NCCLBfloat16: 2, NCCLFloat32: 4, NCCLFloat64: 8, NCCLDataType(42): 0} {
		if got := dt.Size(); got != want {
			t.Errorf("%d.Size() = %d, want %d", dt, got, want)
		}
	}
	if _, err := elems("ncclAllReduce", 6, NCCLFloat32); err == nil || !strings.Contains(err.Error(), "6 bytes is not a whole number of 4-byte elements") {
		t.Errorf("6 bytes of fp32: %v", err)
	}
}
