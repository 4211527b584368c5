package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
)

// KernelSet hands out the embedded kernels by name on one context,
// compiling (through the PTX cache) and loading each source on first use.
// It is what a backend or a conformance test needs to call a kernel
// without knowing which .cu file declares it, and works the same on a real
// and an emulated context.
type KernelSet struct {
	ctx   *Context
	nvrtc *NVRTC
	cache *PTXCache
	mu    sync.Mutex
	mods  map[string]*Module // by source name
	owner map[string]string  // kernel -> source name
}

// NewKernelSet serves the embedded kernels on ctx, compiled by n for
// ctx.Dev.Arch() (cache may be nil).
func NewKernelSet(ctx *Context, n *NVRTC, cache *PTXCache) *KernelSet {
	owner := map[string]string{}
	for _, src := range KernelSources() {
		for _, e := range src.Entries {
			owner[e] = src.Name
		}
	}
	return &KernelSet{ctx: ctx, nvrtc: n, cache: cache, mods: map[string]*Module{}, owner: owner}
}

// Function returns the kernel called name, loading its source if needed.
func (s *KernelSet) Function(name string) (Function, error) {
	srcName, ok := s.owner[name]
	if !ok {
		return Function{}, fmt.Errorf("no embedded kernel %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mods[srcName]
	if m == nil {
		src, err := KernelSourceByName(srcName)
		if err != nil {
			return Function{}, err
		}
		if m, err = s.ctx.LoadSource(s.nvrtc, s.cache, src); err != nil {
			return Function{}, err
		}
		s.mods[srcName] = m
	}
	return m.Function(name)
}

// Upload allocates device memory for data and copies it there. data is a
// []float32, []float64, []int32, []uint32, []uint16 (raw bf16 bits) or
// []byte, stored little endian as the kernels read it.
func (c *Context) Upload(data any) (DevicePtr, error) {
	b, err := hostBytes(data)
	if err != nil {
		return 0, err
	}
	p, err := c.MemAlloc(uint64(max(len(b), 1)))
	if err != nil {
		return 0, err
	}
	if err := c.CopyToDevice(p, b); err != nil {
		_ = c.MemFree(p)
		return 0, err
	}
	return p, nil
}

// Download fills dst (a slice of one of Upload's types) from src.
func (c *Context) Download(dst any, src DevicePtr) error {
	size, err := hostSize(dst)
	if err != nil {
		return err
	}
	b := make([]byte, size)
	if err := c.CopyFromDevice(b, src); err != nil {
		return err
	}
	le := binary.LittleEndian
	switch d := dst.(type) {
	case []float32:
		for i := range d {
			d[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case []float64:
		for i := range d {
			d[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
	case []int32:
		for i := range d {
			d[i] = int32(le.Uint32(b[4*i:]))
		}
	case []uint32:
		for i := range d {
			d[i] = le.Uint32(b[4*i:])
		}
	case []uint16:
		for i := range d {
			d[i] = le.Uint16(b[2*i:])
		}
	case []byte:
		copy(d, b)
	}
	return nil
}

func hostSize(data any) (int, error) {
	switch d := data.(type) {
	case []float32:
		return 4 * len(d), nil
	case []float64:
		return 8 * len(d), nil
	case []int32:
		return 4 * len(d), nil
	case []uint32:
		return 4 * len(d), nil
	case []uint16:
		return 2 * len(d), nil
	case []byte:
		return len(d), nil
	}
	return 0, fmt.Errorf("unsupported host slice type %T", data)
}

func hostBytes(data any) ([]byte, error) {
	n, err := hostSize(data)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, n)
	le := binary.LittleEndian
	switch d := data.(type) {
	case []float32:
		for _, v := range d {
			b = le.AppendUint32(b, math.Float32bits(v))
		}
	case []float64:
		for _, v := range d {
			b = le.AppendUint64(b, math.Float64bits(v))
		}
	case []int32:
		for _, v := range d {
			b = le.AppendUint32(b, uint32(v))
		}
	case []uint32:
		for _, v := range d {
			b = le.AppendUint32(b, v)
		}
	case []uint16:
		for _, v := range d {
			b = le.AppendUint16(b, v)
		}
	case []byte:
		b = append(b, d...)
	}
	return b, nil
}

// BF16 rounds each value to bf16 (nearest even, NaN kept), the storage
// format of the kernels' bf16 tensors.
func BF16(v []float32) []uint16 {
	out := make([]uint16, len(v))
	for i, x := range v {
		out[i] = f32ToBF16(x)
	}
	return out
}

// FromBF16 widens bf16 bits to float32 (exact).
func FromBF16(v []uint16) []float32 {
	out := make([]float32, len(v))
	for i, h := range v {
		out[i] = bf16ToF32(h)
	}
	return out
}
