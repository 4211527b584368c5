package checkpoint

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"purpcode/engine"
)

// Named is a tensor with its checkpoint name (HF names for model weights).
type Named struct {
	Name string
	T    *engine.Tensor
}

// planned is a validated tensor description with its data size; t is its
// data when the caller supplied it up front (WriteFile, WriteDir) and nil
// when a fill function produces it at write time (WriteDirStream).
type planned struct {
	name   string
	dtype  engine.DType
	shape  []int
	nbytes int64
	t      *engine.Tensor
}

// validateTensors checks names and data of the tensors to write and returns
// them with their sizes, in the given order.
func validateTensors(tensors []Named) ([]planned, error) {
	seen := make(map[string]bool, len(tensors))
	out := make([]planned, len(tensors))
	for i, nt := range tensors {
		if err := claimName(i, nt.Name, seen); err != nil {
			return nil, err
		}
		if nt.T == nil {
			return nil, fmt.Errorf("checkpoint: tensor %q is nil", nt.Name)
		}
		p, err := planTensor(nt.Name, nt.T.DType, nt.T.Shape)
		if err != nil {
			return nil, err
		}
		if err := p.checkData(nt.T); err != nil {
			return nil, err
		}
		p.t = nt.T
		out[i] = p
	}
	return out, nil
}

// claimName checks the name of tensor i and that no earlier tensor, those
// in seen, has it; it adds the name to seen.
func claimName(i int, name string, seen map[string]bool) error {
	if !validName(name) {
		return fmt.Errorf("checkpoint: tensor %d: invalid name %q (want non-empty UTF-8, not %s)", i, name, metadataKey)
	}
	if seen[name] {
		return fmt.Errorf("checkpoint: tensor %q given twice", name)
	}
	seen[name] = true
	return nil
}

// planTensor validates a tensor's dtype and shape and computes its data
// size.
func planTensor(name string, d engine.DType, shape []int) (planned, error) {
	numel := int64(1)
	for _, n := range shape {
		if n < 0 {
			return planned{}, fmt.Errorf("checkpoint: tensor %q: negative dimension in shape %s", name, engine.ShapeString(shape))
		}
		if n != 0 && numel > math.MaxInt64/8/int64(n) {
			return planned{}, fmt.Errorf("checkpoint: tensor %q: shape %s is too large", name, engine.ShapeString(shape))
		}
		numel *= int64(n)
	}
	switch d {
	case engine.F32, engine.BF16, engine.F16:
	default:
		return planned{}, fmt.Errorf("checkpoint: tensor %q: unsupported dtype %s", name, d)
	}
	return planned{name: name, dtype: d, shape: shape, nbytes: numel * int64(d.Size())}, nil
}

// checkData reports whether t is data for p: same dtype and shape, and as
// many values as the shape holds. It is what makes a streamed tensor that
// does not match its declaration an error instead of a corrupt file.
func (p planned) checkData(t *engine.Tensor) error {
	if t == nil {
		return fmt.Errorf("checkpoint: tensor %q is nil", p.name)
	}
	if t.DType != p.dtype || !engine.SameShape(t.Shape, p.shape) {
		return fmt.Errorf("checkpoint: tensor %q: got %s %s, declared %s %s",
			p.name, t.DType, engine.ShapeString(t.Shape), p.dtype, engine.ShapeString(p.shape))
	}
	var have int
	if t.DType == engine.F32 {
		have = len(t.F32)
	} else {
		have = len(t.Half)
	}
	if want := p.nbytes / int64(p.dtype.Size()); int64(have) != want {
		return fmt.Errorf("checkpoint: tensor %q: %d %s values for shape %s (want %d)",
			p.name, have, t.DType, engine.ShapeString(t.Shape), want)
	}
	return nil
}

// dtypeRank orders dtypes as the reference library's Dtype enum does; it
// writes tensors by descending rank, then by name, so that every tensor is
// aligned to its element size once the data section is 8-byte aligned.
func dtypeRank(d engine.DType) int {
	switch d {
	case engine.F16:
		return 0
	case engine.BF16:
		return 1
	}
	return 2 // F32
}

// layout sorts tensors into the reference library's file order.
func layout(ts []planned) []planned {
	out := append([]planned(nil), ts...)
	sort.Slice(out, func(i, j int) bool {
		ri, rj := dtypeRank(out[i].dtype), dtypeRank(out[j].dtype)
		if ri != rj {
			return ri > rj
		}
		return out[i].name < out[j].name
	})
	return out
}

// encodeHeader renders the header exactly as the reference library does:
// compact JSON, __metadata__ first (keys sorted here; the reference uses
// hash order), tensors in file order, padded with spaces to a multiple of 8
// so that the data section starts 8-byte aligned. The 8-byte length prefix
// is included.
func encodeHeader(ts []planned, metadata map[string]string) []byte {
	b := make([]byte, 8, 8+64*len(ts)+64)
	b = append(b, '{')
	first := true
	if len(metadata) > 0 {
		b = appendJSONString(b, metadataKey)
		b = append(b, ':', '{')
		for i, k := range sortedKeys(metadata) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, metadata[k])
		}
		b = append(b, '}')
		first = false
	}
	var off int64
	for _, p := range ts {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, p.name)
		b = append(b, `:{"dtype":"`...)
		b = append(b, p.dtype.String()...)
		b = append(b, `","shape":[`...)
		for i, d := range p.shape {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendInt(b, off, 10)
		b = append(b, ',')
		off += p.nbytes
		b = strconv.AppendInt(b, off, 10)
		b = append(b, ']', '}')
	}
	b = append(b, '}')
	for (len(b)-8)%8 != 0 {
		b = append(b, ' ')
	}
	binary.LittleEndian.PutUint64(b[:8], uint64(len(b)-8))
	return b
}

// writeSafetensors writes a whole file of tensors held in memory.
func writeSafetensors(w io.Writer, ts []planned, metadata map[string]string) error {
	return writeSafetensorsStream(w, ts, metadata, heldData)
}

// heldData is the fill of tensors whose data the caller supplied up front.
func heldData(p planned) (*engine.Tensor, error) { return p.t, nil }

// writeSafetensorsStream writes a whole file: the header, which needs only
// the tensors' descriptions, then each tensor's data little-endian as fill
// produces it, in the order of ts. Nothing here keeps a tensor once its
// bytes are written, so a fill that makes each tensor afresh bounds memory
// to one tensor.
func writeSafetensorsStream(w io.Writer, ts []planned, metadata map[string]string, fill func(planned) (*engine.Tensor, error)) error {
	if _, err := w.Write(encodeHeader(ts, metadata)); err != nil {
		return err
	}
	enc := dataEncoder{w: w, native: littleEndian}
	for _, p := range ts {
		t, err := fill(p)
		if err != nil {
			return fmt.Errorf("checkpoint: tensor %q: %w", p.name, err)
		}
		if err := p.checkData(t); err != nil {
			return err
		}
		if err := enc.write(t); err != nil {
			return err
		}
	}
	return nil
}

// writeData writes the tensors' elements little-endian; native says the
// host is little-endian too, so the slices can be written as they are.
func writeData(w io.Writer, ts []planned, native bool) error {
	enc := dataEncoder{w: w, native: native}
	for _, p := range ts {
		if err := enc.write(p.t); err != nil {
			return err
		}
	}
	return nil
}

// dataEncoder writes tensors' elements little-endian, one tensor at a time.
// native says the host is little-endian too, so the slices can be written
// as they are; otherwise elements go through buf, allocated once per file
// so that memory stays bounded whatever the tensor sizes.
type dataEncoder struct {
	w      io.Writer
	native bool
	buf    []byte
}

func (e *dataEncoder) write(t *engine.Tensor) error {
	if e.native {
		// The in-memory layout is the file's: write the slice directly.
		var b []byte
		if t.DType == engine.F32 {
			b = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(t.F32))), 4*len(t.F32))
		} else {
			b = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(t.Half))), 2*len(t.Half))
		}
		_, err := e.w.Write(b)
		return err
	}
	const chunk = 1 << 20
	if e.buf == nil {
		e.buf = make([]byte, chunk)
	}
	buf := e.buf
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		_, err := e.w.Write(buf[:n])
		n = 0
		return err
	}
	if t.DType == engine.F32 {
		for _, v := range t.F32 {
			if n == chunk {
				if err := flush(); err != nil {
					return err
				}
			}
			binary.LittleEndian.PutUint32(buf[n:], math.Float32bits(v))
			n += 4
		}
	} else {
		for _, v := range t.Half {
			if n == chunk {
				if err := flush(); err != nil {
					return err
				}
			}
			binary.LittleEndian.PutUint16(buf[n:], v)
			n += 2
		}
	}
	return flush()
}

// WriteFile writes tensors to a safetensors file laid out byte for byte as
// the reference (Python/Rust) library lays it out: tensors ordered by dtype
// (F32, BF16, F16) and then by name, header padded with spaces to a multiple
// of 8 bytes. metadata becomes __metadata__ when non-empty. The write is
// atomic (see AtomicWriteFile): path holds the old file or the complete new
// one. Duplicate names, a nil tensor or data that does not match its shape
// are errors, reported before anything is written.
func WriteFile(path string, tensors []Named, metadata map[string]string) error {
	ts, err := validateTensors(tensors)
	if err != nil {
		return fmt.Errorf("checkpoint: write %s: %w", path, err)
	}
	return atomicWrite(path, 0o644, func(w io.Writer) error {
		return writeSafetensors(w, layout(ts), metadata)
	})
}

// WriteOptions configures WriteDir and WriteDirStream.
type WriteOptions struct {
	// MaxShardBytes splits the tensors into shards of at most this many data
	// bytes (a single tensor larger than that gets a shard of its own);
	// 0 writes a single model.safetensors.
	MaxShardBytes int64
	// Metadata is the __metadata__ of every safetensors file. "format":"pt"
	// is added when absent, because transformers refuses files without it.
	Metadata map[string]string
	// Files are extra files (config.json, tokenizer.json, ...) written into
	// the directory with the tensors, by plain file name.
	Files map[string][]byte
}

// shardPlan is the tensors of one output file, in the given order.
type shardPlan struct {
	file    string
	tensors []planned
}

// planShards splits greedily in the given order, as transformers'
// split_torch_state_dict_into_shards does, and names the files the HF way.
// One resulting shard means no sharding at all.
func planShards(ts []planned, maxBytes int64) []shardPlan {
	var shards [][]planned
	var cur []planned
	var curBytes int64
	for _, p := range ts {
		if maxBytes > 0 && len(cur) > 0 && curBytes+p.nbytes > maxBytes {
			shards = append(shards, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, p)
		curBytes += p.nbytes
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	if len(shards) == 1 {
		return []shardPlan{{file: SingleFileName, tensors: shards[0]}}
	}
	out := make([]shardPlan, len(shards))
	for i, s := range shards {
		out[i] = shardPlan{file: fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards)), tensors: s}
	}
	return out
}

// WriteDir writes a Hugging Face model directory: model.safetensors, or
// model-0000i-of-0000N.safetensors shards plus model.safetensors.index.json
// when the tensors exceed opts.MaxShardBytes, and opts.Files.
//
// Crash semantics. Everything is built in a sibling temp dir
// ".<name>.tmp-<S>" and every file and the temp dir are fsynced before dir
// is touched. If dir does not exist, the temp dir is renamed to it. If it
// does, the old dir is renamed to ".<name>.old-<S>", the new one renamed into
// place, the parent fsynced, and the old one removed. At every instant a
// complete checkpoint therefore exists: dir itself, or, in the window
// between the two renames, ".<name>.old-<S>" (old) and ".<name>.tmp-<S>"
// (new, complete). RecoverDir, which WriteDir runs first, puts the new one in
// place after such a crash and deletes leftovers. Readers opening dir never
// look at the hidden siblings. Only one writer per dir at a time; a Reader
// opened on the old dir keeps working until closed, its mappings pin the
// files.
//
// WriteDir is WriteDirStream fed from memory; use that one when the
// tensors do not fit in memory together.
func WriteDir(dir string, tensors []Named, opts WriteOptions) error {
	return writeDir(dir, tensors, opts, nil)
}

// writeDir is WriteDir with a test hook called at named steps ("file:<name>"
// after each file is written, "synced" before dir is touched, "aside" between
// the two renames). Cleanup on failure is done inline, not deferred, so that
// a hook that panics leaves the disk exactly as a crash at that step would.
func writeDir(dir string, tensors []Named, opts WriteOptions, hook func(step string) error) error {
	plan := func() ([]planned, error) { return validateTensors(tensors) }
	return writeDirStream(dir, opts, hook, plan, heldData)
}

// writeDirStream is the one implementation of WriteDir and WriteDirStream:
// plan validates and describes the tensors (called after the options are
// checked, before anything is written) and fill produces each tensor's data
// when its turn in the file comes. hook is writeDir's.
func writeDirStream(dir string, opts WriteOptions, hook func(step string) error,
	plan func() ([]planned, error), fill func(planned) (*engine.Tensor, error)) error {
	if hook == nil {
		hook = func(string) error { return nil }
	}
	wrap := func(err error) error { return fmt.Errorf("checkpoint: write dir %s: %w", dir, err) }
	if opts.MaxShardBytes < 0 {
		return wrap(fmt.Errorf("MaxShardBytes %d is negative", opts.MaxShardBytes))
	}
	for name := range opts.Files {
		if !plainFileName(name) || strings.HasSuffix(name, ".safetensors") || name == IndexFileName {
			return wrap(fmt.Errorf("extra file %q: want a plain file name that is neither a .safetensors file nor %s", name, IndexFileName))
		}
	}
	ts, err := plan()
	if err != nil {
		return wrap(err)
	}
	meta := map[string]string{"format": "pt"}
	for k, v := range opts.Metadata {
		meta[k] = v
	}

	dir = filepath.Clean(dir)
	parent, base := filepath.Split(dir)
	if parent == "" {
		parent = "."
	}
	if base == "" || base == "." || base == ".." {
		return wrap(fmt.Errorf("want a path ending in a directory name"))
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return wrap(err)
	}
	if err := RecoverDir(dir); err != nil {
		return wrap(err)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-")
	if err != nil {
		return wrap(err)
	}
	suffix := strings.TrimPrefix(filepath.Base(tmp), "."+base+".tmp-")
	fail := func(err error) error {
		os.RemoveAll(tmp)
		return wrap(err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}

	shards := planShards(ts, opts.MaxShardBytes)
	weightMap := map[string]string{}
	var total int64
	for _, s := range shards {
		err := writeSynced(filepath.Join(tmp, s.file), 0o644, func(w io.Writer) error {
			return writeSafetensorsStream(w, layout(s.tensors), meta, fill)
		})
		if err != nil {
			return fail(err)
		}
		for _, p := range s.tensors {
			weightMap[p.name] = s.file
			total += p.nbytes
		}
		if err := hook("file:" + s.file); err != nil {
			return fail(err)
		}
	}
	if len(shards) > 1 {
		idx, err := encodeIndex(total, weightMap)
		if err != nil {
			return fail(err)
		}
		if err := writeSynced(filepath.Join(tmp, IndexFileName), 0o644, writeBytes(idx)); err != nil {
			return fail(err)
		}
	}
	names := make([]string, 0, len(opts.Files))
	for name := range opts.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := writeSynced(filepath.Join(tmp, name), 0o644, writeBytes(opts.Files[name])); err != nil {
			return fail(err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return fail(err)
	}
	if err := hook("synced"); err != nil {
		return fail(err)
	}

	st, err := os.Lstat(dir)
	switch {
	case os.IsNotExist(err):
		if err := os.Rename(tmp, dir); err != nil {
			return fail(err)
		}
		if err := syncDir(parent); err != nil {
			return wrap(err)
		}
		return nil
	case err != nil:
		return fail(err)
	case !st.IsDir():
		return fail(fmt.Errorf("%s exists and is not a directory", dir))
	}

	old := filepath.Join(parent, "."+base+".old-"+suffix)
	if err := os.Rename(dir, old); err != nil {
		return fail(err)
	}
	// Make "old is aside" durable before the new dir appears, so that no
	// crash can leave a state where dir is new but the old copy vanished
	// without the new one being complete.
	if err := syncDir(parent); err != nil {
		return restore(old, dir, fail(err))
	}
	if err := hook("aside"); err != nil {
		return restore(old, dir, fail(err))
	}
	if err := os.Rename(tmp, dir); err != nil {
		return restore(old, dir, fail(err))
	}
	if err := syncDir(parent); err != nil {
		return wrap(err)
	}
	if err := os.RemoveAll(old); err != nil {
		return wrap(fmt.Errorf("new checkpoint in place, but removing the old one %s: %w", old, err))
	}
	if err := syncDir(parent); err != nil {
		return wrap(err)
	}
	return nil
}

// restore moves the old dir back after a failed swap and returns err.
func restore(old, dir string, err error) error {
	if rerr := os.Rename(old, dir); rerr != nil {
		return fmt.Errorf("%w; the previous checkpoint remains at %s (restoring it failed: %v)", err, old, rerr)
	}
	return err
}

func writeBytes(data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}

// RecoverDir repairs what a crash during WriteDir(dir) may leave behind: if
// dir is missing but ".<name>.old-<S>" exists, the new copy
// ".<name>.tmp-<S>" is complete (the old one is only moved aside after the
// new one is synced) and is renamed to dir; lacking it, the old copy is
// restored. All remaining ".<name>.tmp-*" and ".<name>.old-*" siblings are
// then removed. It does nothing when there are no leftovers and must not run
// while another WriteDir on the same dir is in progress.
func RecoverDir(dir string) error {
	dir = filepath.Clean(dir)
	parent, base := filepath.Split(dir)
	if parent == "" {
		parent = "."
	}
	wrap := func(err error) error { return fmt.Errorf("checkpoint: recover %s: %w", dir, err) }
	entries, err := os.ReadDir(parent)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return wrap(err)
	}
	tmpPrefix, oldPrefix := "."+base+".tmp-", "."+base+".old-"
	tmps, olds := map[string]bool{}, []string{}
	for _, e := range entries {
		switch name := e.Name(); {
		case strings.HasPrefix(name, tmpPrefix):
			tmps[strings.TrimPrefix(name, tmpPrefix)] = true
		case strings.HasPrefix(name, oldPrefix):
			olds = append(olds, strings.TrimPrefix(name, oldPrefix))
		}
	}
	if len(tmps) == 0 && len(olds) == 0 {
		return nil
	}
	sort.Strings(olds)
	changed := false
	if _, err := os.Lstat(dir); os.IsNotExist(err) && len(olds) > 0 {
		pick, from := olds[0], oldPrefix+olds[0]
		for _, s := range olds {
			if tmps[s] {
				pick, from = s, tmpPrefix+s
				break
			}
		}
		if err := os.Rename(filepath.Join(parent, from), dir); err != nil {
			return wrap(err)
		}
		if from == tmpPrefix+pick {
			delete(tmps, pick)
		} else {
			olds = removeString(olds, pick)
		}
		changed = true
	} else if err != nil && !os.IsNotExist(err) {
		return wrap(err)
	}
	for s := range tmps {
		if err := os.RemoveAll(filepath.Join(parent, tmpPrefix+s)); err != nil {
			return wrap(err)
		}
		changed = true
	}
	for _, s := range olds {
		if err := os.RemoveAll(filepath.Join(parent, oldPrefix+s)); err != nil {
			return wrap(err)
		}
		changed = true
	}
	if changed {
		if err := syncDir(parent); err != nil {
			return wrap(err)
		}
	}
	return nil
}

func removeString(list []string, s string) []string {
	out := list[:0]
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}
