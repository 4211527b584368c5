// Package ptxemu is an emulated GPU: a pure-Go interpreter for the PTX that
// NVRTC produces for compute_80 from the project's kernels (the same bytes
// cuModuleLoadData would get), with the memory checkers of
// compute-sanitizer always on. It lets every `go test` execute the CUDA
// kernels on a machine without a GPU.
//
// # Execution model
//
// LoadModule parses the PTX (header, module .global/.const/.shared
// variables, .entry with its .param list, .reg ranges such as %r<12>,
// scoped { } blocks, static and .extern dynamic .shared, .local depots) and
// pre-decodes every instruction into a compact struct: type, rounding,
// state space and compare are resolved, and every operand is a register
// index (immediates, symbol addresses and special registers are registers
// the thread's file starts with). An instruction or modifier the emulator
// does not implement fails LoadModule with a *Fault of kind UnknownOpcode
// naming the opcode, the kernel and the PTX line, so a new kernel fails
// loudly instead of running wrongly.
//
// Launch runs the grid's blocks one after another, in blockIdx order
// (results, including the order of atomics, are deterministic). Within a
// block each thread has its own program counter and runs alone until it
// exits or reaches a collective: bar.sync/barrier.sync, shfl.sync,
// vote.sync, redux.sync, mma.sync or bar.warp.sync. PTX semantics are per thread, so divergence
// needs no reconvergence stack. When no thread can run, the collectives
// whose participants have all arrived complete (shfl.sync, vote.sync,
// redux.sync and bar.warp.sync when every lane of the member mask waits at
// the same kind of collective with the same mask; mma.sync
// when the whole warp waits at the same mma.sync; bar.sync when every
// thread of the block waits at the same bar.sync) and release their
// threads. cp.async copies are deferred: the source is read when the copy
// is issued, but the bytes land in shared memory only when the issuing
// thread's cp.async.wait_group/wait_all covers their commit group.
//
// Numerics are those of package ptxmath (round-to-nearest and directed
// rounding computed exactly, .ftz, .sat, NaN rules, bf16 conversion, the
// mma fragment layout).
//
// # Checkers
//
// Every launch checks, and stops at the first problem with a *Fault naming
// the kernel, the block and thread, and the PTX line:
//
//   - OutOfBounds: global accesses outside every allocation (allocations are
//     separated by unmapped gaps, so one element past the end is caught),
//     shared accesses past the block's static+dynamic size, local accesses
//     past the thread's depot;
//   - Misaligned: any access not aligned to its size (vector: its whole
//     size), cp.async not aligned to its copy size;
//   - SharedRace: racecheck on shared memory. Each byte remembers its last
//     writer and reader and the barrier epoch of each; a read of a byte
//     another thread wrote in the same epoch, or a write that changes a byte
//     another thread wrote or read in the same epoch, is a race. Reading or
//     writing a byte while a cp.async copy into it is in flight (a missing
//     wait_group) is a race too;
//   - BarrierDivergence: bar.sync not reached by every thread of the block
//     (some exited, or threads wait at different barriers), reported
//     instead of hanging;
//   - InactiveLane: a shfl.sync member mask naming a lane that exited or
//     never arrives, a lane executing shfl.sync outside its own mask, a
//     lane reading a source lane outside the mask, mma.sync without the
//     full warp;
//   - UninitializedRead: a kernel reading global memory no one wrote since
//     Alloc (per-byte shadow; Write and Memset initialise), or shared memory
//     no thread wrote (reported at the next barrier unless another thread
//     writes the byte first, which is then reported as a race);
//   - StepLimit: a thread running more than Options.MaxSteps instructions;
//   - BadLaunch: argument sizes not matching the .param list, block shapes
//     or shared sizes the driver would reject;
//   - InvalidInstruction: integer division by zero and other forms the ISA
//     leaves undefined.
//
// # What the emulator cannot tell
//
//   - Timing, occupancy, register pressure and spills, bank conflicts and
//     memory coalescing: nothing here models the hardware's schedule or
//     memory system (scripts/gpu-check.sh runs the same tests on a GPU).
//   - Races between blocks in global memory, and memory-ordering bugs that
//     only a weakly ordered memory shows: blocks run sequentially and each
//     thread's accesses are sequentially consistent.
//   - Warp-synchronous code that relies on lockstep execution without a
//     .sync collective: threads here do not run in lockstep, so such code
//     is (correctly) reported as racy rather than silently working.
//     bar.warp.sync (__syncwarp) does order a warp's shared accesses.
//   - The tensor cores' accumulation order and internal precision: mma.sync
//     sums exact products in float64 and rounds once; hardware results can
//     differ in the last bits.
//   - The real error of .approx instructions (ex2, lg2, rcp, rsqrt, sin,
//     cos, tanh, div.approx): they are computed (nearly) exactly; the ISA's
//     error bounds apply on hardware, so tests compare kernels that use them
//     with a tolerance.
//   - Contraction done by ptxas: mul and add without a rounding modifier
//     may be fused into fma by the GPU's assembler; the emulator rounds each
//     separately, as the PTX is written.
//   - Generic addressing details beyond the global, shared and local
//     windows; Options.Workers is reserved (blocks do not run in parallel).
package ptxemu
