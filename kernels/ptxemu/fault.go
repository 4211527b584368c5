package ptxemu

import "fmt"

// FaultKind classifies what a checker (or the decoder) found.
type FaultKind int

// The fault kinds. Each names a class of kernel bug the emulator reports
// instead of silently computing garbage.
const (
	// OutOfBounds: an access outside every device allocation, outside the
	// block's shared memory, or outside the thread's local memory.
	OutOfBounds FaultKind = iota + 1
	// Misaligned: an address that is not a multiple of the access size.
	Misaligned
	// SharedRace: a shared-memory byte read or written by one thread after
	// another thread wrote (or read) it with no bar.sync in between, or read
	// while a cp.async copy into it is still in flight.
	SharedRace
	// BarrierDivergence: bar.sync not reached by every thread of the block
	// (a deadlock on hardware), reported instead of hanging.
	BarrierDivergence
	// InactiveLane: shfl.sync/mma.sync whose member mask names a lane that
	// exited or never arrives, or a lane executing it outside its mask.
	InactiveLane
	// UninitializedRead: a read of device memory never written (by the host
	// or a kernel) since it was allocated.
	UninitializedRead
	// UnknownOpcode: an instruction, modifier or directive the emulator does
	// not implement; reported at LoadModule so new kernels fail loudly.
	UnknownOpcode
	// StepLimit: a thread executed more instructions than Options.MaxSteps.
	StepLimit
	// BadLaunch: launch arguments that the driver would reject (parameter
	// sizes, block shape, shared memory size).
	BadLaunch
	// InvalidInstruction: a well-formed instruction used in a way the ISA
	// leaves undefined (division by zero is not one: it is defined).
	InvalidInstruction
)

func (k FaultKind) String() string {
	switch k {
	case OutOfBounds:
		return "out-of-bounds access"
	case Misaligned:
		return "misaligned access"
	case SharedRace:
		return "shared-memory race"
	case BarrierDivergence:
		return "barrier divergence"
	case InactiveLane:
		return "inactive lane in warp collective"
	case UninitializedRead:
		return "read of uninitialised memory"
	case UnknownOpcode:
		return "unknown opcode"
	case StepLimit:
		return "step limit exceeded"
	case BadLaunch:
		return "bad launch"
	case InvalidInstruction:
		return "invalid instruction"
	}
	return fmt.Sprintf("fault(%d)", int(k))
}

// Fault is the error every checker returns. Block and Thread are the CUDA
// blockIdx/threadIdx of the faulting thread (zero for load-time faults);
// Line is the 1-based line of the PTX text.
type Fault struct {
	Kind   FaultKind
	Kernel string
	Block  [3]uint32
	Thread [3]uint32
	Line   int
	Detail string
}

func (f *Fault) Error() string {
	where := ""
	if f.Kernel != "" {
		where = " in kernel " + f.Kernel
	}
	if f.Line > 0 {
		where += fmt.Sprintf(" at PTX line %d", f.Line)
	}
	if f.Kind == UnknownOpcode || f.Kind == BadLaunch {
		// load- and launch-time faults belong to no thread
		return fmt.Sprintf("ptxemu: %s%s: %s", f.Kind, where, f.Detail)
	}
	return fmt.Sprintf("ptxemu: %s%s, block (%d,%d,%d) thread (%d,%d,%d): %s", f.Kind, where,
		f.Block[0], f.Block[1], f.Block[2], f.Thread[0], f.Thread[1], f.Thread[2], f.Detail)
}
