package ptxemu_test

import (
	"syscall"
	"testing"
	"time"

	"purpcode/kernels/ptxemu"
)

// cpuTime is the process's user+system CPU time: on a shared machine the
// interpreter's rate per CPU-second is steadier than per wall-second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRate runs launch b.N times and reports instructions per second of
// wall and of CPU time.
func reportRate(b *testing.B, launch func() ptxemu.Stats) {
	b.Helper()
	var instr uint64
	wall0, cpu0 := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		instr += launch().Instructions
	}
	wall, cpu := time.Since(wall0), cpuTime()-cpu0
	b.ReportMetric(float64(instr)/wall.Seconds()/1e6, "Minstr/s")
	if cpu > 0 {
		b.ReportMetric(float64(instr)/cpu.Seconds()/1e6, "Minstr/cpu-s")
	}
}

// BenchmarkCollatz is the interpreter's integer/branch speed: 4096 threads
// of a divergent data-dependent loop, no memory traffic but one store.
func BenchmarkCollatz(b *testing.B) {
	e := newEmu(b)
	k := e.kernel(collatzPTX, "collatz")
	out := e.alloc(4 * 4096)
	reportRate(b, func() ptxemu.Stats { return e.mustLaunch(k, dim(32), dim(128), 0, u64p(out)) })
}

// BenchmarkBlockReduce is shared-memory and barrier heavy (racecheck on
// every access): NVRTC's block reduction over 64 blocks of 256 threads.
func BenchmarkBlockReduce(b *testing.B) {
	ptx := compileCUDA(b, "reduce.cu", reduceSrc)
	e := newEmu(b)
	k := e.kernel(string(ptx), "block_reduce")
	const n = 64 * 256
	xa, out := e.f32s(make([]float32, n)), e.alloc(4*64)
	reportRate(b, func() ptxemu.Stats {
		return e.mustLaunch(k, dim(64), dim(256), 0, u64p(xa), u64p(out), u32p(n))
	})
}
