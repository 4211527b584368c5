package plan

import (
	"fmt"
	"io"

	"purpcode/checkpoint"
)

// ByteRange is a run of bytes of one file.
type ByteRange struct {
	File   string
	Offset int64
	Length int64
}

// SliceRanges returns the byte ranges of file holding slice s of a tensor
// stored row-major (as safetensors stores it) and described by info: one
// range when the slice is contiguous (dimension 0, or the whole tensor),
// one per index of the dimensions before the split one otherwise (a
// row-parallel slice of a 2-D weight: one range per row). Adjacent ranges
// are merged, so the list is as short as the layout allows, in file order.
func SliceRanges(info checkpoint.TensorInfo, s Slice) ([]ByteRange, error) {
	numel := Slice{Dim: -1}.Numel(info.Shape)
	if numel == 0 {
		return nil, nil
	}
	if info.Bytes%numel != 0 {
		return nil, fmt.Errorf("plan: tensor %q: %d bytes for %d elements", info.Name, info.Bytes, numel)
	}
	elem := info.Bytes / numel
	if s.Dim < 0 {
		return []ByteRange{{File: info.File, Offset: info.Offset, Length: info.Bytes}}, nil
	}
	if s.Dim >= len(info.Shape) || s.Lo < 0 || s.Hi > info.Shape[s.Dim] || s.Lo > s.Hi {
		return nil, fmt.Errorf("plan: tensor %q of shape %v has no slice [%d, %d) of dimension %d", info.Name, info.Shape, s.Lo, s.Hi, s.Dim)
	}
	if s.Lo == s.Hi {
		return nil, nil
	}
	outer := int64(1)
	for _, v := range info.Shape[:s.Dim] {
		outer *= int64(v)
	}
	inner := elem // bytes of one index of the split dimension
	for _, v := range info.Shape[s.Dim+1:] {
		inner *= int64(v)
	}
	stride := int64(info.Shape[s.Dim]) * inner
	length := int64(s.Hi-s.Lo) * inner
	var out []ByteRange
	for o := int64(0); o < outer; o++ {
		off := info.Offset + o*stride + int64(s.Lo)*inner
		if n := len(out); n > 0 && out[n-1].Offset+out[n-1].Length == off {
			out[n-1].Length += length
			continue
		}
		out = append(out, ByteRange{File: info.File, Offset: off, Length: length})
	}
	return out, nil
}

// ReadRanges reads ranges, all of one file, from r into dst in order and
// returns the filled prefix of dst (a new buffer when dst is too short).
// It reads exactly those bytes and nothing else.
func ReadRanges(r io.ReaderAt, ranges []ByteRange, dst []byte) ([]byte, error) {
	var total int64
	for _, br := range ranges {
		total += br.Length
	}
	if int64(cap(dst)) < total {
		dst = make([]byte, total)
	}
	dst = dst[:total]
	pos := int64(0)
	for _, br := range ranges {
		if _, err := r.ReadAt(dst[pos:pos+br.Length], br.Offset); err != nil {
			return nil, fmt.Errorf("read %s bytes [%d, %d): %w", br.File, br.Offset, br.Offset+br.Length, err)
		}
		pos += br.Length
	}
	return dst, nil
}
