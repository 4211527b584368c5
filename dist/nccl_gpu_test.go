package dist

import (
	"context"
	"flag"
	"slices"
	"testing"
	"time"

	"purpcode/kernels"
)

// ncclDevice selects the device of TestNCCLOnGPU, like the CUDA tests'
// flag: "emu" (the default) skips it, "real" runs it on the first GPU
// (scripts/gpu-check.sh passes -cuda-device=real).
var ncclDevice = flag.String("cuda-device", "emu", "device the NCCL GPU test runs on: emu (skipped) or real (first GPU)")

// TestNCCLOnGPU runs one rank of a real NCCL communicator on the first GPU
// (NCCL allows one rank per GPU, and one rank still goes through
// initialisation, the kernels and the stream): every Comm collective
// through the staging buffers, the device-pointer collectives in place,
// and an out-of-place all-reduce whose result can only come from NCCL's
// kernel having run in this context.
func TestNCCLOnGPU(t *testing.T) {
	if *ncclDevice != "real" {
		t.Skip("NCCL needs a GPU: run with -cuda-device=real (scripts/gpu-check.sh run dist)")
	}
	drv, err := kernels.LoadDriver(kernels.CUDALibOptions{})
	if err != nil {
		t.Fatal(err)
	}
	devs, err := drv.Devices()
	if err != nil || len(devs) == 0 {
		t.Fatalf("devices: %v, %v", devs, err)
	}
	cctx, err := drv.NewContext(devs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer cctx.Destroy()
	lib, err := kernels.LoadNCCL(kernels.CUDALibOptions{})
	if err != nil {
		t.Fatalf("-cuda-device=real needs NCCL: %v", err)
	}
	// Driver.NewContext is cuCtxCreate's context; NCCL binds the primary
	// one (see kernels.NCCL.InitRank), so failures below with invalid
	// handles or illegal addresses point there first.
	t.Logf("NCCL %s (%s) on %s, in a cuCtxCreate context", lib.VersionString(), lib.Path, devs[0].Name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cpus, err := ConnectLocal(ctx, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer cpus[0].Close()
	c, err := NewNCCL(ctx, cpus[0], lib, kernels.NewNCCLDevice(cctx))
	if err != nil {
		t.Fatal(err)
	}

	// Host slices through the staging buffers.
	f32 := []float32{1.5, -2, 3.25, 7}
	if err := c.AllReduceSum(ctx, f32); err != nil || !slices.Equal(f32, []float32{1.5, -2, 3.25, 7}) {
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
	out := make([]float32, 4)
	if err := c.ReduceScatterSum(ctx, f32, out); err != nil || !slices.Equal(out, f32) {
		t.Errorf("ReduceScatterSum: %v %v", out, err)
	}
	gathered := make([]uint16, 3)
	if err := c.AllGatherBF16(ctx, bf, gathered); err != nil || !slices.Equal(gathered, bf) {
		t.Errorf("AllGatherBF16: %x %v", gathered, err)
	}
	msg := []byte("from rank 0")
	if err := c.Broadcast(ctx, msg, 0); err != nil || string(msg) != "from rank 0" {
		t.Errorf("Broadcast: %q %v", msg, err)
	}
	if err := c.Barrier(ctx); err != nil {
		t.Errorf("Barrier: %v", err)
	}
	big := make([]float32, 1<<20) // 4 MiB: the staging buffers grow
	for i := range big {
		big[i] = float32(i % 1000)
	}
	if err := c.AllReduceSum(ctx, big); err != nil || big[999] != 999 || big[1<<20-1] != float32((1<<20-1)%1000) {
		t.Errorf("AllReduceSum of 4 MiB: %v", err)
	}

	// Device memory, in place.
	p, err := cctx.Upload([]float32{1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	defer cctx.MemFree(p)
	r := c.Device()
	for name, call := range map[string]func() error{
		"AllReduceDevice":     func() error { return r.AllReduceDevice(ctx, p, 4, kernels.NCCLFloat32) },
		"ReduceScatterDevice": func() error { return r.ReduceScatterDevice(ctx, p, 4, kernels.NCCLFloat32) },
		"AllGatherDevice":     func() error { return r.AllGatherDevice(ctx, p, 4, kernels.NCCLFloat32) },
		"BroadcastDevice":     func() error { return r.BroadcastDevice(ctx, p, 4, kernels.NCCLFloat32, 0) },
	} {
		if err := call(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	got := make([]float32, 4)
	if err := cctx.Download(got, p); err != nil || !slices.Equal(got, []float32{1, 2, 3, 4}) {
		t.Errorf("device buffer after the in-place collectives: %v %v", got, err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	// Out of place, on the context's default stream: recv receives send
	// only if NCCL's kernel ran on this context's memory.
	id, err := lib.UniqueID()
	if err != nil {
		t.Fatal(err)
	}
	comm, err := lib.InitRank(cctx, id, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	recv, err := cctx.MemAlloc(16)
	if err != nil {
		t.Fatal(err)
	}
	defer cctx.MemFree(recv)
	if err := comm.AllReduce(p, recv, 4, kernels.NCCLFloat32, kernels.NCCLSum, kernels.Stream{}); err != nil {
		t.Fatal(err)
	}
	if err := cctx.Synchronize(kernels.Stream{}); err != nil {
		t.Fatal(err)
	}
	clear(got)
	if err := cctx.Download(got, recv); err != nil || !slices.Equal(got, []float32{1, 2, 3, 4}) {
		t.Errorf("out-of-place all-reduce: %v %v", got, err)
	}
	if err := comm.Destroy(); err != nil {
		t.Errorf("Destroy: %v", err)
	}
}
