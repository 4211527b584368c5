package ptxemu_test

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"purpcode/kernels/ptxemu"
)

// emu wraps a Device with fatal-on-error helpers for tests.
type emu struct {
	t testing.TB
	*ptxemu.Device
}

func newEmu(t testing.TB) *emu { return &emu{t: t, Device: ptxemu.NewDevice(ptxemu.Options{})} }

func (e *emu) kernel(ptx, name string) *ptxemu.Kernel {
	e.t.Helper()
	m, err := e.LoadModule([]byte(ptx))
	if err != nil {
		e.t.Fatalf("load: %v", err)
	}
	k, err := m.Kernel(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

func (e *emu) alloc(n int) uint64 {
	e.t.Helper()
	a, err := e.Alloc(uint64(n))
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *emu) f32s(v []float32) uint64 {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	a := e.alloc(len(b))
	if err := e.Write(a, b); err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *emu) u32s(v []uint32) uint64 {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	a := e.alloc(len(b))
	if err := e.Write(a, b); err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *emu) zeros(n int) uint64 {
	a := e.alloc(n)
	if err := e.Memset(a, 0, uint64(n)); err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *emu) readU32(a uint64, n int) []uint32 {
	e.t.Helper()
	b := make([]byte, 4*n)
	if err := e.Read(b, a); err != nil {
		e.t.Fatal(err)
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

func (e *emu) readF32(a uint64, n int) []float32 {
	u := e.readU32(a, n)
	out := make([]float32, n)
	for i, x := range u {
		out[i] = math.Float32frombits(x)
	}
	return out
}

func (e *emu) launch(k *ptxemu.Kernel, grid, block [3]uint32, dyn uint32, params ...[]byte) (ptxemu.Stats, error) {
	return e.Launch(k, grid, block, dyn, params)
}

func (e *emu) mustLaunch(k *ptxemu.Kernel, grid, block [3]uint32, dyn uint32, params ...[]byte) ptxemu.Stats {
	e.t.Helper()
	st, err := e.Launch(k, grid, block, dyn, params)
	if err != nil {
		e.t.Fatalf("launch %s: %v", k.Name(), err)
	}
	return st
}

func u64p(v uint64) []byte  { return binary.LittleEndian.AppendUint64(nil, v) }
func u32p(v uint32) []byte  { return binary.LittleEndian.AppendUint32(nil, v) }
func f32p(v float32) []byte { return u32p(math.Float32bits(v)) }

func dim(x uint32) [3]uint32 { return [3]uint32{x, 1, 1} }

// wantFault asserts err is a *Fault of kind k and returns it.
func wantFault(t testing.TB, err error, k ptxemu.FaultKind) *ptxemu.Fault {
	t.Helper()
	var f *ptxemu.Fault
	if !errors.As(err, &f) {
		t.Fatalf("want a %v fault, got %v", k, err)
	}
	if f.Kind != k {
		t.Fatalf("want a %v fault, got %v", k, f)
	}
	return f
}
