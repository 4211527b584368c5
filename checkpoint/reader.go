package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"

	"purpcode/engine"
)

// File names of a Hugging Face model directory.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// TensorInfo describes one tensor without reading its data.
type TensorInfo struct {
	Name string
	// DType is the engine dtype; it is meaningful only when Supported is
	// true. RawDType always holds the file's spelling ("F32", "I64", ...).
	DType     engine.DType
	RawDType  string
	Supported bool
	Shape     []int
	// File is the path of the .safetensors file holding the tensor.
	File string
	// Bytes is the size of the tensor's data in the file.
	Bytes int64
	// Offset is the position of the tensor's first byte in File, so a
	// sharded loader can read its slice with ReadAt alone.
	Offset int64
}

// Reader gives access to the tensors of one safetensors file or of a
// (possibly sharded) Hugging Face model directory. Files are memory-mapped;
// Tensor copies out of the mapping, so returned tensors stay valid after
// Close. Names, Info, Tensor and Metadata may be called concurrently; Close
// must not race with them.
type Reader struct {
	source   string // the path given to Open, for messages
	files    []*mapped
	refs     map[string]ref
	names    []string
	metadata map[string]string
	closed   bool
}

type mapped struct {
	path    string
	data    []byte // whole file
	mmapped bool   // data came from mapFile and must be unmapped
	hdr     *header
}

type ref struct {
	f *mapped
	e *entry
}

// Open opens path, which is a .safetensors file, a model.safetensors.index.json
// file, or a directory holding model.safetensors or a sharded
// model.safetensors.index.json (model.safetensors wins when both exist, as in
// transformers). Other files in a directory, such as temp dirs left by an
// interrupted WriteDir, are never looked at. Every header is fully validated
// here, so a Reader that opens serves every tensor without further format
// errors.
func Open(path string) (*Reader, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if st.IsDir() {
		single := filepath.Join(path, SingleFileName)
		ok, err := isFile(single)
		if err != nil {
			return nil, err
		}
		if ok {
			return openSingle(single)
		}
		index := filepath.Join(path, IndexFileName)
		if ok, err = isFile(index); err != nil {
			return nil, err
		}
		if ok {
			return openIndex(index)
		}
		return nil, fmt.Errorf("checkpoint: %s holds neither %s nor %s", path, SingleFileName, IndexFileName)
	}
	if strings.HasSuffix(path, ".index.json") {
		return openIndex(path)
	}
	return openSingle(path)
}

func isFile(path string) (bool, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	return !st.IsDir(), nil
}

func openSingle(path string) (*Reader, error) {
	m, err := openMapped(path)
	if err != nil {
		return nil, err
	}
	return newReader(path, []*mapped{m}), nil
}

// openMapped maps and validates one safetensors file.
func openMapped(path string) (*mapped, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer f.Close() // the mapping does not need the descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if st.Size() < 8 {
		return nil, formatErr(path, "", "file is %d bytes, shorter than the 8-byte header length field", st.Size())
	}
	data, err := mapFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	hdr, err := parseHeader(path, data)
	if err != nil {
		_ = unmapFile(data) // the parse error is the one worth reporting
		return nil, err
	}
	return &mapped{path: path, data: data, mmapped: true, hdr: hdr}, nil
}

// readerFromBytes parses an in-memory safetensors image; name stands for the
// file in messages. It exists for the fuzz target, which should not pay for
// a file per input.
func readerFromBytes(name string, data []byte) (*Reader, error) {
	hdr, err := parseHeader(name, data)
	if err != nil {
		return nil, err
	}
	return newReader(name, []*mapped{{path: name, data: data, hdr: hdr}}), nil
}

// newReader indexes the tensors of already validated files, which the caller
// has checked to hold distinct names. files[0] supplies Metadata.
func newReader(source string, files []*mapped) *Reader {
	r := &Reader{source: source, files: files, refs: map[string]ref{}}
	for _, f := range files {
		for name, e := range f.hdr.entries {
			r.refs[name] = ref{f: f, e: e}
			r.names = append(r.names, name)
		}
	}
	sort.Strings(r.names)
	if len(files) > 0 {
		r.metadata = files[0].hdr.metadata
	}
	return r
}

// Names returns the tensor names, sorted.
func (r *Reader) Names() []string { return append([]string(nil), r.names...) }

// Info describes the named tensor.
func (r *Reader) Info(name string) (TensorInfo, bool) {
	rf, ok := r.refs[name]
	if !ok {
		return TensorInfo{}, false
	}
	e := rf.e
	return TensorInfo{
		Name:      name,
		DType:     e.dtype,
		RawDType:  e.rawDType,
		Supported: e.supported,
		Shape:     append([]int(nil), e.shape...),
		File:      rf.f.path,
		Bytes:     e.end - e.begin,
		Offset:    rf.f.hdr.dataStart + e.begin,
	}, true
}

// Metadata returns a copy of the __metadata__ map of the first file (the only
// one, or the first shard by name); nil when the file has none.
func (r *Reader) Metadata() map[string]string {
	if r.metadata == nil {
		return nil
	}
	out := make(map[string]string, len(r.metadata))
	for k, v := range r.metadata {
		out[k] = v
	}
	return out
}

// Tensor returns a copy of the named tensor in the file's dtype: F32 in
// Tensor.F32, BF16 and F16 as raw bit patterns in Tensor.Half. Other
// safetensors dtypes give an "unsupported dtype" error.
func (r *Reader) Tensor(name string) (*engine.Tensor, error) {
	rf, err := r.readable(name)
	if err != nil {
		return nil, err
	}
	e := rf.e
	start := rf.f.hdr.dataStart
	b := rf.f.data[start+e.begin : start+e.end]
	t := &engine.Tensor{DType: e.dtype, Shape: append([]int(nil), e.shape...)}
	decodeInto(t, b, littleEndian)
	return t, nil
}

// readable is the named tensor's reference when its data can be read:
// the reader is open, the tensor exists and its dtype is one engine
// tensors hold.
func (r *Reader) readable(name string) (ref, error) {
	if r.closed {
		return ref{}, fmt.Errorf("checkpoint %s: tensor %q requested after Close", r.source, name)
	}
	rf, ok := r.refs[name]
	if !ok {
		return ref{}, fmt.Errorf("checkpoint %s: no tensor %q", r.source, name)
	}
	if !rf.e.supported {
		return ref{}, fmt.Errorf("checkpoint %s: tensor %q: unsupported dtype %s (engine tensors are F32, BF16 or F16)",
			rf.f.path, name, rf.e.rawDType)
	}
	return rf, nil
}

// decodeInto fills t (dtype and shape set) from little-endian bytes b;
// native says the host is little-endian, so a byte copy suffices.
func decodeInto(t *engine.Tensor, b []byte, native bool) {
	if t.DType == engine.F32 {
		t.F32 = make([]float32, len(b)/4)
		if native {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(t.F32))), len(b)), b)
		} else {
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		}
	} else {
		t.Half = make([]uint16, len(b)/2)
		if native {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(t.Half))), len(b)), b)
		} else {
			for i := range t.Half {
				t.Half[i] = binary.LittleEndian.Uint16(b[2*i:])
			}
		}
	}
}

// littleEndian is true on hosts whose memory layout equals the file's, where
// a tensor can be copied as bytes (a plain memmove; about twice the Open+Tensor
// throughput of decoding element by element on the 2-core dev VM).
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Close unmaps every file. It is idempotent; tensors already returned stay
// valid.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	for _, f := range r.files {
		if f.mmapped {
			if err := unmapFile(f.data); err != nil {
				errs = append(errs, fmt.Errorf("checkpoint: munmap %s: %w", f.path, err))
			}
		}
		f.data = nil
	}
	return errors.Join(errs...)
}
