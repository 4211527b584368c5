package ptxemu

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Address-space layout of the emulated device. Global allocations live in
// [globalBase, sharedWindow); the generic-address windows of shared and
// local memory sit above them, so cvta and generic ld/st can tell the
// spaces apart the way the hardware's windows do.
const (
	globalBase   = uint64(1) << 32
	sharedWindow = uint64(1) << 44
	localWindow  = uint64(1) << 45
	windowSize   = uint64(1) << 40
	// allocGap separates allocations so that an access just past the end of
	// one never lands inside the next one.
	allocGap   = 4096
	allocAlign = 256
	// maxDeviceMemory caps the total allocated, like a card's memory (the
	// emulator holds it, plus a byte of shadow per byte, in host memory).
	maxDeviceMemory = uint64(8) << 30
)

// Options configure a Device.
type Options struct {
	// MaxSteps is the per-thread instruction limit of one launch (0 means
	// 1<<28, about two CPU-seconds of one spinning thread; the project's
	// kernels at test shapes run tens of thousands per thread); a thread exceeding
	// it faults with StepLimit instead of spinning forever.
	MaxSteps uint64
	// Workers is reserved for running blocks in parallel; blocks currently
	// run one after another (in blockIdx order) so results, atomics
	// included, are deterministic.
	Workers int
}

// Device is one emulated GPU: its memory and the modules loaded on it. It
// holds no global state. Its methods may be called from several goroutines:
// they are serialised (a launch holds the device until it finishes), so
// calls behave as one in-order stream.
type Device struct {
	mu     sync.Mutex
	opts   Options
	allocs []*allocation // sorted by base
	next   uint64
	total  uint64
	last   *allocation // cache of the last allocation an access hit
}

type allocation struct {
	base uint64
	data []byte
	init []byte // 1 where the byte has been written since Alloc
}

// NewDevice returns an empty device.
func NewDevice(opts Options) *Device {
	if opts.MaxSteps == 0 {
		opts.MaxSteps = 1 << 28
	}
	return &Device{opts: opts, next: globalBase}
}

// Alloc reserves n bytes of global memory. The bytes start uninitialised:
// a kernel reading them before anything writes them faults.
func (d *Device) Alloc(n uint64) (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.alloc(n)
}

func (d *Device) alloc(n uint64) (uint64, error) {
	if n == 0 {
		n = 1
	}
	if d.total+n > maxDeviceMemory {
		return 0, fmt.Errorf("ptxemu: alloc %d bytes: out of device memory (%d of %d bytes in use)", n, d.total, maxDeviceMemory)
	}
	base := d.next
	a := &allocation{base: base, data: make([]byte, n), init: make([]byte, n)}
	d.next = (base + n + allocGap + allocAlign - 1) &^ (allocAlign - 1)
	if d.next >= sharedWindow {
		return 0, errors.New("ptxemu: alloc: device address space exhausted")
	}
	d.total += n
	d.allocs = append(d.allocs, a) // bases increase, so the slice stays sorted
	return base, nil
}

// Free releases an allocation made by Alloc.
func (d *Device) Free(addr uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, a := range d.allocs {
		if a.base == addr {
			d.allocs = append(d.allocs[:i], d.allocs[i+1:]...)
			d.total -= uint64(len(a.data))
			if d.last == a {
				d.last = nil
			}
			return nil
		}
	}
	return fmt.Errorf("ptxemu: free %#x: not the start of an allocation", addr)
}

// find returns the allocation holding [addr, addr+n), or nil.
func (d *Device) find(addr, n uint64) *allocation {
	if a := d.last; a != nil && addr >= a.base && addr+n <= a.base+uint64(len(a.data)) && addr+n >= addr {
		return a
	}
	i := sort.Search(len(d.allocs), func(i int) bool { return d.allocs[i].base > addr }) - 1
	if i < 0 {
		return nil
	}
	a := d.allocs[i]
	if addr+n > a.base+uint64(len(a.data)) || addr+n < addr {
		return nil
	}
	d.last = a
	return a
}

func (d *Device) span(op string, addr, n uint64) (*allocation, uint64, error) {
	if n == 0 {
		return nil, 0, nil
	}
	a := d.find(addr, n)
	if a == nil {
		return nil, 0, fmt.Errorf("ptxemu: %s [%#x, +%d): not inside one allocation", op, addr, n)
	}
	return a, addr - a.base, nil
}

// Write copies src to device memory at addr and marks it initialised.
func (d *Device) Write(addr uint64, src []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.write(addr, src)
}

func (d *Device) write(addr uint64, src []byte) error {
	a, off, err := d.span("write", addr, uint64(len(src)))
	if err != nil || a == nil {
		return err
	}
	copy(a.data[off:], src)
	fill(a.init[off:off+uint64(len(src))], 1)
	return nil
}

// Read copies device memory at addr to dst. Reading uninitialised bytes
// from the host is allowed (they read as zero): only kernels are checked.
func (d *Device) Read(dst []byte, addr uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, off, err := d.span("read", addr, uint64(len(dst)))
	if err != nil || a == nil {
		return err
	}
	copy(dst, a.data[off:])
	return nil
}

// Memset sets n bytes at addr to v and marks them initialised.
func (d *Device) Memset(addr uint64, v byte, n uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, off, err := d.span("memset", addr, n)
	if err != nil || a == nil {
		return err
	}
	fill(a.data[off:off+n], v)
	fill(a.init[off:off+n], 1)
	return nil
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}
