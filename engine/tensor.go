package engine

import (
	"fmt"
	"slices"
	"strings"

	"purpcode/internal/half"
	"purpcode/kernels"
)

// DType is the element type of a tensor's storage. CPU compute is always
// float32; BF16 and F16 exist for checkpoints and (later) device storage.
type DType uint8

const (
	F32 DType = iota
	BF16
	F16
)

// String returns the safetensors spelling ("F32", "BF16", "F16").
func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case BF16:
		return "BF16"
	case F16:
		return "F16"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size is the number of bytes per element.
func (d DType) Size() int {
	if d == F32 {
		return 4
	}
	return 2
}

// ParseDType accepts the safetensors spelling.
func ParseDType(s string) (DType, error) {
	switch s {
	case "F32":
		return F32, nil
	case "BF16":
		return BF16, nil
	case "F16":
		return F16, nil
	}
	return 0, fmt.Errorf("unsupported dtype %q (want F32, BF16 or F16)", s)
}

// Tensor is a row-major tensor. On the host, exactly one of F32 (for DType
// F32) or Half (for BF16/F16, raw bit patterns) holds the elements; on a
// device, Dev addresses them.
type Tensor struct {
	DType DType
	Shape []int
	F32   []float32
	Half  []uint16
	// Dev is the device address of the first element of a tensor that
	// lives on a device (0 for a host tensor). Only backends read it; F32
	// and Half are nil for a device tensor.
	Dev kernels.DevicePtr
}

// New returns a zeroed float32 tensor of the given shape.
func New(shape ...int) *Tensor {
	return &Tensor{DType: F32, Shape: append([]int(nil), shape...), F32: make([]float32, Numel(shape))}
}

// FromF32 wraps data (not copied) as a float32 tensor; len(data) must match shape.
func FromF32(data []float32, shape ...int) *Tensor {
	if len(data) != Numel(shape) {
		panic(fmt.Sprintf("engine.FromF32: %d values for shape %v", len(data), shape))
	}
	return &Tensor{DType: F32, Shape: append([]int(nil), shape...), F32: data}
}

// Numel is the product of the dimensions.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Numel is the number of elements.
func (t *Tensor) Numel() int { return Numel(t.Shape) }

// ShapeString formats a shape as (a, b, c), the way errors print it.
func ShapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// SameShape reports whether two shapes are equal.
func SameShape(a, b []int) bool { return slices.Equal(a, b) }

// ToF32 returns the values as float32, converting from 16-bit storage if
// needed. For an F32 tensor it returns the underlying slice, not a copy.
func (t *Tensor) ToF32() []float32 {
	switch t.DType {
	case F32:
		return t.F32
	case BF16:
		out := make([]float32, len(t.Half))
		for i, h := range t.Half {
			out[i] = half.BF16ToF32(h)
		}
		return out
	case F16:
		out := make([]float32, len(t.Half))
		for i, h := range t.Half {
			out[i] = half.F16ToF32(h)
		}
		return out
	}
	panic("engine: tensor with unknown dtype " + t.DType.String())
}

// Convert returns a new tensor with the given dtype (rounding to nearest even
// when narrowing). Converting to the same dtype copies.
func (t *Tensor) Convert(d DType) *Tensor {
	src := t.ToF32()
	out := &Tensor{DType: d, Shape: append([]int(nil), t.Shape...)}
	switch d {
	case F32:
		out.F32 = append([]float32(nil), src...)
	case BF16:
		out.Half = make([]uint16, len(src))
		for i, v := range src {
			out.Half[i] = half.F32ToBF16(v)
		}
	case F16:
		out.Half = make([]uint16, len(src))
		for i, v := range src {
			out.Half[i] = half.F32ToF16(v)
		}
	default:
		panic("engine: convert to unknown dtype " + d.String())
	}
	return out
}
