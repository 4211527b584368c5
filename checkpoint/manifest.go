package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"

	"purpcode/engine"
)

// Sharded checkpoints. A sharded checkpoint is a directory of safetensors
// files, each written by one rank and holding that rank's slices of some
// tensors, plus ManifestFileName, which makes the directory complete: it
// lists every tensor (full shape, dtype, the dimension it is split on and,
// per rank, the [lo, hi) of that dimension and the file holding it) and
// every file of the directory with its size and SHA-256. The manifest is
// written last, by one process, after every rank's file is in place, so a
// directory without one is never a checkpoint. Ranks may hold overlapping
// slices (a tensor replicated on every rank, or rows several ranks keep);
// readers take each index from the first slice, in manifest order, that
// holds it. Nothing here knows what the tensors mean.

// ManifestFileName is the file that makes a sharded checkpoint complete.
const ManifestFileName = "manifest.json"

// ManifestFormat and ManifestVersion identify the manifest layout; another
// version is refused rather than misread.
const (
	ManifestFormat  = "purpcode-sharded-checkpoint"
	ManifestVersion = 1
)

// Manifest describes a sharded checkpoint.
type Manifest struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// Layout is the writers' topology, e.g. {"tp": 2, "dp": 4}: informative
	// for messages, readers rely on the slices alone.
	Layout map[string]int `json:"layout"`
	// Files are every file of the checkpoint but the manifest itself.
	Files   []FileDigest    `json:"files"`
	Tensors []ShardedTensor `json:"tensors"`
	// Meta is the writer's own data (a trainer's resumable state), kept
	// verbatim.
	Meta map[string]json.RawMessage `json:"meta,omitempty"`
}

// FileDigest is one file's name (inside the checkpoint directory), size
// and SHA-256 (hex).
type FileDigest struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ShardedTensor is one logical tensor and where its slices are.
type ShardedTensor struct {
	Name  string `json:"name"`
	DType string `json:"dtype"` // safetensors spelling: F32, BF16, F16
	Shape []int  `json:"shape"`
	// Dim is the dimension the slices cut, -1 when each slice is the whole
	// tensor (replicated).
	Dim    int        `json:"dim"`
	Slices []SliceRef `json:"slices"`
}

// SliceRef is indices [Lo, Hi) of the tensor's split dimension held by
// Rank in File (under the tensor's own name, shaped like the slice). For a
// replicated tensor Lo and Hi are 0.
type SliceRef struct {
	Rank int    `json:"rank"`
	Lo   int    `json:"lo"`
	Hi   int    `json:"hi"`
	File string `json:"file"`
}

// WriteFileDigest is WriteFile that also returns the written file's size
// and SHA-256, computed from the bytes as they are written (no second
// read of a multi-gigabyte shard). The digest's Name is path's base name.
func WriteFileDigest(path string, tensors []Named, metadata map[string]string) (FileDigest, error) {
	ts, err := validateTensors(tensors)
	if err != nil {
		return FileDigest{}, fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	var hw hashWriter
	err = atomicWrite(path, 0o644, func(w io.Writer) error {
		hw = hashWriter{w: w, h: sha256.New()}
		return writeSafetensors(&hw, layout(ts), metadata)
	})
	if err != nil {
		return FileDigest{}, err
	}
	return FileDigest{Name: filepath.Base(path), Size: hw.n, SHA256: hex.EncodeToString(hw.h.Sum(nil))}, nil
}

// WriteFileDigestBytes writes data to path atomically and returns its
// digest.
func WriteFileDigestBytes(path string, data []byte) (FileDigest, error) {
	if err := AtomicWriteFile(path, data, 0o644); err != nil {
		return FileDigest{}, err
	}
	sum := sha256.Sum256(data)
	return FileDigest{Name: filepath.Base(path), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, nil
}

type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// Validate checks the manifest's own consistency: format and version,
// plain unique file names, unique tensor names with known dtypes, slices
// inside their shapes and in listed safetensors files, and every index of
// every split dimension held by some slice.
func (m *Manifest) Validate() error {
	if m.Format != ManifestFormat || m.Version != ManifestVersion {
		return fmt.Errorf("format %q version %d, this build reads %q version %d", m.Format, m.Version, ManifestFormat, ManifestVersion)
	}
	files := map[string]bool{}
	for _, f := range m.Files {
		if !plainFileName(f.Name) || f.Name == ManifestFileName {
			return fmt.Errorf("file %q: want a plain file name other than %s", f.Name, ManifestFileName)
		}
		if files[f.Name] {
			return fmt.Errorf("file %q listed twice", f.Name)
		}
		if f.Size < 0 || !isSHA256Hex(f.SHA256) {
			return fmt.Errorf("file %q: size %d, sha256 %q (want a size >= 0 and 64 lowercase hex digits)", f.Name, f.Size, f.SHA256)
		}
		files[f.Name] = true
	}
	names := map[string]bool{}
	for _, t := range m.Tensors {
		if !validName(t.Name) || names[t.Name] {
			return fmt.Errorf("tensor %q: invalid or listed twice", t.Name)
		}
		names[t.Name] = true
		if dt, ok := stDTypes[t.DType]; !ok || !dt.supported {
			return fmt.Errorf("tensor %q: dtype %q, want F32, BF16 or F16", t.Name, t.DType)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
		}
		if t.Dim < -1 || t.Dim >= len(t.Shape) {
			return fmt.Errorf("tensor %q: split dimension %d of shape %v", t.Name, t.Dim, t.Shape)
		}
		if len(t.Slices) == 0 {
			return fmt.Errorf("tensor %q: no slices", t.Name)
		}
		for _, s := range t.Slices {
			if !files[s.File] || filepath.Ext(s.File) != ".safetensors" {
				return fmt.Errorf("tensor %q: rank %d's slice is in %q, not a listed .safetensors file", t.Name, s.Rank, s.File)
			}
			if t.Dim >= 0 && (s.Lo < 0 || s.Hi > t.Shape[t.Dim] || s.Lo >= s.Hi) {
				return fmt.Errorf("tensor %q: rank %d's slice [%d, %d) of dimension %d is outside shape %v", t.Name, s.Rank, s.Lo, s.Hi, t.Dim, t.Shape)
			}
		}
		if t.Dim >= 0 {
			if pos, ok := coverage(t, 0, t.Shape[t.Dim], nil); !ok {
				return fmt.Errorf("tensor %q: index %d of dimension %d is held by no rank", t.Name, pos, t.Dim)
			}
		}
	}
	return nil
}

// coverage walks [lo, hi) of t's split dimension, calling piece (when not
// nil) with each run taken from one slice: the first slice, in manifest
// order, that holds the run's first index. It returns the first index no
// slice holds, and false, if there is one.
func coverage(t ShardedTensor, lo, hi int, piece func(s SliceRef, lo, hi int) error) (int, bool) {
	for pos := lo; pos < hi; {
		found := false
		for _, s := range t.Slices {
			if s.Lo <= pos && pos < s.Hi {
				end := min(hi, s.Hi)
				if piece != nil && piece(s, pos, end) != nil {
					return pos, false
				}
				pos, found = end, true
				break
			}
		}
		if !found {
			return pos, false
		}
	}
	return 0, true
}

// EncodeManifest renders m as indented JSON (validated first).
func EncodeManifest(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("checkpoint: manifest: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("checkpoint: encode manifest: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteManifest validates m and writes it atomically as dir's manifest:
// the last step of a sharded save.
func WriteManifest(dir string, m *Manifest) error {
	b, err := EncodeManifest(m)
	if err != nil {
		return err
	}
	return AtomicWriteFile(filepath.Join(dir, ManifestFileName), b, 0o644)
}

// HasManifest reports whether dir holds a manifest (is meant to be a
// sharded checkpoint), without reading it.
func HasManifest(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, ManifestFileName))
	return err == nil && !st.IsDir()
}

// isSHA256Hex reports whether s is a SHA-256 digest as the manifest
// writes it: 64 lowercase hex digits.
func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ReadManifest reads and validates dir's manifest.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: sharded checkpoint %s: %w", dir, err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("checkpoint: manifest %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("checkpoint: manifest %s: data after the JSON object", path)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("checkpoint: manifest %s: %w", path, err)
	}
	return &m, nil
}

// CheckFiles checks that every file the manifest lists is in dir with its
// size and, when hash is set, its SHA-256 (which reads every byte). The
// error names every missing or damaged file.
func (m *Manifest) CheckFiles(dir string, hash bool) error {
	var errs []error
	for _, f := range m.Files {
		path := filepath.Join(dir, f.Name)
		st, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("file %s listed in the manifest is missing", f.Name))
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		case st.Size() != f.Size:
			errs = append(errs, fmt.Errorf("file %s is %d bytes, the manifest says %d", f.Name, st.Size(), f.Size))
			continue
		}
		if !hash {
			continue
		}
		sum, err := fileSHA256(path)
		if err != nil {
			errs = append(errs, err)
		} else if sum != f.SHA256 {
			errs = append(errs, fmt.Errorf("file %s has SHA-256 %s, the manifest says %s (damaged or replaced)", f.Name, sum, f.SHA256))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("checkpoint: sharded checkpoint %s is incomplete or damaged: %w", dir, errors.Join(errs...))
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ShardedReader reads tensors of a sharded checkpoint by slice, whatever
// slices they were saved in: a request within one saved slice reads only
// its byte ranges of one file; one spanning several is assembled from the
// pieces of each; one along another dimension than the saved split first
// assembles that one tensor whole. It implements Slicer.
type ShardedReader struct {
	dir     string
	m       *Manifest
	tensors map[string]*ShardedTensor
	files   map[string]*Reader
	names   []string
}

// OpenSharded opens a sharded checkpoint: its manifest is read and
// validated, every listed file must be present with its size (hashes are
// CheckFiles(dir, true)'s job: it reads everything), and every slice must be in its
// file under its name with the slice's shape and the tensor's dtype.
func OpenSharded(dir string) (*ShardedReader, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if err := m.CheckFiles(dir, false); err != nil {
		return nil, err
	}
	sr := &ShardedReader{dir: dir, m: m, tensors: map[string]*ShardedTensor{}, files: map[string]*Reader{}}
	fail := func(err error) (*ShardedReader, error) {
		sr.Close()
		return nil, err
	}
	for i := range m.Tensors {
		t := &m.Tensors[i]
		sr.tensors[t.Name] = t
		sr.names = append(sr.names, t.Name)
		for _, s := range t.Slices {
			r := sr.files[s.File]
			if r == nil {
				if r, err = Open(filepath.Join(dir, s.File)); err != nil {
					return fail(err)
				}
				sr.files[s.File] = r
			}
			info, ok := r.Info(t.Name)
			want := t.Shape
			if t.Dim >= 0 {
				want = SliceShape(t.Shape, t.Dim, s.Lo, s.Hi)
			}
			switch {
			case !ok:
				return fail(fmt.Errorf("checkpoint: sharded checkpoint %s: %s does not hold rank %d's slice of %q", dir, s.File, s.Rank, t.Name))
			case info.RawDType != t.DType || !engine.SameShape(info.Shape, want):
				return fail(fmt.Errorf("checkpoint: sharded checkpoint %s: %s holds %q as %s %v, the manifest wants %s %v",
					dir, s.File, t.Name, info.RawDType, info.Shape, t.DType, want))
			}
		}
	}
	sort.Strings(sr.names)
	return sr, nil
}

// Manifest returns the checkpoint's manifest (not a copy: do not modify).
func (sr *ShardedReader) Manifest() *Manifest { return sr.m }

// Names returns the logical tensor names, sorted.
func (sr *ShardedReader) Names() []string { return append([]string(nil), sr.names...) }

// Info describes the named logical tensor: its full shape and dtype. File
// is the manifest, Offset and Bytes are 0 (the tensor is in pieces).
func (sr *ShardedReader) Info(name string) (TensorInfo, bool) {
	t, ok := sr.tensors[name]
	if !ok {
		return TensorInfo{}, false
	}
	dt := stDTypes[t.DType]
	return TensorInfo{Name: name, DType: dt.engine, RawDType: t.DType, Supported: true, Shape: append([]int(nil), t.Shape...),
		File: filepath.Join(sr.dir, ManifestFileName)}, true
}

// ReadSlice returns indices [lo, hi) of dimension dim of the named tensor
// (dim -1: the whole tensor) in its saved dtype.
func (sr *ShardedReader) ReadSlice(name string, dim, lo, hi int) (*engine.Tensor, error) {
	t, ok := sr.tensors[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint: sharded checkpoint %s: no tensor %q", sr.dir, name)
	}
	wrap := func(err error) error {
		return fmt.Errorf("checkpoint: sharded checkpoint %s: tensor %q: %w", sr.dir, name, err)
	}
	if err := checkSlice(t.Shape, dim, lo, hi); err != nil {
		return nil, wrap(err)
	}
	if t.Dim < 0 {
		// Replicated: every slice is the whole tensor; the first serves.
		s := t.Slices[0]
		return sr.files[s.File].ReadSlice(name, dim, lo, hi)
	}
	if dim == t.Dim {
		out, err := sr.along(t, lo, hi)
		if err != nil {
			return nil, wrap(err)
		}
		return out, nil
	}
	// Another cut than the saved one (or the whole tensor): assemble this
	// one tensor along its saved dimension, then cut it.
	whole, err := sr.along(t, 0, t.Shape[t.Dim])
	if err != nil {
		return nil, wrap(err)
	}
	if dim < 0 {
		return whole, nil // the whole tensor: no second copy
	}
	return cut(whole, dim, lo, hi), nil
}

// along assembles [lo, hi) of t's saved split dimension from the saved
// slices, reading from each file only the part it contributes.
func (sr *ShardedReader) along(t *ShardedTensor, lo, hi int) (*engine.Tensor, error) {
	dt := stDTypes[t.DType].engine
	out := &engine.Tensor{DType: dt, Shape: SliceShape(t.Shape, t.Dim, lo, hi)}
	n := engine.Numel(out.Shape)
	if dt == engine.F32 {
		out.F32 = make([]float32, n)
	} else {
		out.Half = make([]uint16, n)
	}
	outer := engine.Numel(t.Shape[:t.Dim])
	inner := engine.Numel(t.Shape[t.Dim+1:])
	var readErr error
	pos, ok := coverage(*t, lo, hi, func(s SliceRef, a, b int) error {
		piece, err := sr.files[s.File].ReadSlice(t.Name, t.Dim, a-s.Lo, b-s.Lo)
		if err != nil {
			readErr = err
			return err
		}
		if dt == engine.F32 {
			place(out.F32, piece.F32, outer, inner, hi-lo, b-a, a-lo)
		} else {
			place(out.Half, piece.Half, outer, inner, hi-lo, b-a, a-lo)
		}
		return nil
	})
	if readErr != nil {
		return nil, readErr
	}
	if !ok {
		return nil, fmt.Errorf("index %d of dimension %d is held by no rank", pos, t.Dim)
	}
	return out, nil
}

// place copies src, a block of outer × srcLen × inner elements, into dst,
// of outer × dstLen × inner, at index at of the middle dimension.
func place[T any](dst, src []T, outer, inner, dstLen, srcLen, at int) {
	run := srcLen * inner
	for o := range outer {
		copy(dst[(o*dstLen+at)*inner:], src[o*run:(o+1)*run])
	}
}

// cut returns indices [lo, hi) of dimension dim of a host tensor (dim -1:
// a copy of the whole).
func cut(t *engine.Tensor, dim, lo, hi int) *engine.Tensor {
	out := &engine.Tensor{DType: t.DType, Shape: SliceShape(t.Shape, dim, lo, hi)}
	if dim < 0 {
		out.F32 = append([]float32(nil), t.F32...)
		out.Half = append([]uint16(nil), t.Half...)
		return out
	}
	outer, inner, rows := engine.Numel(t.Shape[:dim]), engine.Numel(t.Shape[dim+1:]), t.Shape[dim]
	run := (hi - lo) * inner
	take := func(o int) (int, int) { return (o*rows + lo) * inner, (o*rows+lo)*inner + run }
	if t.DType == engine.F32 {
		out.F32 = make([]float32, outer*run)
		for o := range outer {
			a, b := take(o)
			copy(out.F32[o*run:], t.F32[a:b])
		}
	} else {
		out.Half = make([]uint16, outer*run)
		for o := range outer {
			a, b := take(o)
			copy(out.Half[o*run:], t.Half[a:b])
		}
	}
	return out
}

// Close unmaps every file.
func (sr *ShardedReader) Close() error {
	var errs []error
	for _, r := range sr.files {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}
