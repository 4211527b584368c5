package checkpoint

import (
	"fmt"
	"unsafe"

	"purpcode/engine"
)

// Slicer is what a sharded loader reads from: tensor descriptions and
// slices of tensors. *Reader (an HF directory or one safetensors file),
// *ShardedReader (a sharded training checkpoint) and Traced implement it,
// so one loader serves all three.
type Slicer interface {
	Names() []string
	Info(name string) (TensorInfo, bool)
	// ReadSlice returns indices [lo, hi) of dimension dim of the named
	// tensor (dim -1: the whole tensor) in the stored dtype, shaped like
	// the tensor with dimension dim cut to hi-lo.
	ReadSlice(name string, dim, lo, hi int) (*engine.Tensor, error)
}

// ReadSlice returns indices [lo, hi) of dimension dim of the named tensor
// (dim -1: the whole tensor), in the file's dtype (F32, BF16 or F16), its
// shape the tensor's with dimension dim cut to hi-lo. Safetensors stores
// tensors row-major, so the slice is one run of bytes per index of the
// dimensions before dim (a single run for dimension 0): only those runs
// are copied out of the mapping, so only the pages holding them are read
// from disk. That is what lets a tensor-parallel rank load its shard of a
// model it could not hold whole.
func (r *Reader) ReadSlice(name string, dim, lo, hi int) (*engine.Tensor, error) {
	return r.readSlice(name, dim, lo, hi, nil)
}

// Traced is a Reader whose slice reads report every run of bytes they
// copy (file, absolute offset, length) to OnRead before copying it: tests
// use it to prove a loader reads exactly its byte ranges and nothing else.
type Traced struct {
	*Reader
	OnRead func(file string, off, n int64)
}

// ReadSlice is Reader.ReadSlice, reporting each run to t.OnRead.
func (t Traced) ReadSlice(name string, dim, lo, hi int) (*engine.Tensor, error) {
	return t.readSlice(name, dim, lo, hi, t.OnRead)
}

// SliceShape is shape with dimension dim cut to hi-lo (dim -1: shape).
func SliceShape(shape []int, dim, lo, hi int) []int {
	out := append([]int(nil), shape...)
	if dim >= 0 {
		out[dim] = hi - lo
	}
	return out
}

// checkSlice validates a slice request against a shape.
func checkSlice(shape []int, dim, lo, hi int) error {
	if dim < -1 || dim >= len(shape) {
		return fmt.Errorf("no dimension %d in shape %s", dim, engine.ShapeString(shape))
	}
	if dim >= 0 && (lo < 0 || hi > shape[dim] || lo > hi) {
		return fmt.Errorf("slice [%d, %d) of dimension %d is outside shape %s", lo, hi, dim, engine.ShapeString(shape))
	}
	return nil
}

// runs describes slice [lo, hi) of dimension dim of a row-major tensor of
// shape with elem-byte elements: outer runs of length bytes each, run o
// starting at first + o*stride (bytes relative to the tensor's start).
func runs(shape []int, elem int64, dim, lo, hi int) (outer, first, stride, length int64) {
	if dim < 0 {
		n := elem
		for _, d := range shape {
			n *= int64(d)
		}
		return 1, 0, n, n
	}
	outer = 1
	for _, d := range shape[:dim] {
		outer *= int64(d)
	}
	inner := elem // bytes of one index of dimension dim
	for _, d := range shape[dim+1:] {
		inner *= int64(d)
	}
	stride = int64(shape[dim]) * inner
	length = int64(hi-lo) * inner
	if length == stride {
		// The slice spans whole rows: it is one contiguous run.
		return 1, int64(lo) * inner, outer * stride, outer * length
	}
	return outer, int64(lo) * inner, stride, length
}

func (r *Reader) readSlice(name string, dim, lo, hi int, onRead func(file string, off, n int64)) (*engine.Tensor, error) {
	rf, err := r.readable(name)
	if err != nil {
		return nil, err
	}
	e := rf.e
	if err := checkSlice(e.shape, dim, lo, hi); err != nil {
		return nil, fmt.Errorf("checkpoint %s: tensor %q: %w", rf.f.path, name, err)
	}
	elem := int64(e.dtype.Size())
	outer, first, stride, length := runs(e.shape, elem, dim, lo, hi)
	t := &engine.Tensor{DType: e.dtype, Shape: SliceShape(e.shape, dim, lo, hi)}
	total := outer * length
	var dst []byte
	if littleEndian {
		// Copy straight into the tensor's storage: the file's layout is the
		// host's, and a slice of a large tensor should not exist twice.
		if t.DType == engine.F32 {
			t.F32 = make([]float32, total/4)
			dst = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(t.F32))), total)
		} else {
			t.Half = make([]uint16, total/2)
			dst = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(t.Half))), total)
		}
	} else {
		dst = make([]byte, total)
	}
	base := rf.f.hdr.dataStart + e.begin
	for o := range outer {
		if length == 0 {
			break // an empty slice reads nothing
		}
		off := base + first + o*stride
		if onRead != nil {
			onRead(rf.f.path, off, length)
		}
		copy(dst[o*length:(o+1)*length], rf.f.data[off:off+length])
	}
	if !littleEndian {
		decodeInto(t, dst, false)
	}
	return t, nil
}
