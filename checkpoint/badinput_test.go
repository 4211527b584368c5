package checkpoint

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openErr writes data as a file, opens it and returns the error, which must
// be a *FormatError naming the file and (when given) the tensor.
func openErr(t *testing.T, data []byte, tensor, want string) {
	t.Helper()
	path := writeTemp(t, t.TempDir(), "bad.safetensors", data)
	r, err := Open(path)
	if err == nil {
		r.Close()
		t.Fatalf("Open succeeded, want an error containing %q", want)
	}
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FormatError", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || fe.File != path {
		t.Fatalf("error %q does not name the file %s", msg, path)
	}
	if tensor != "" && (!strings.Contains(msg, `"`+tensor+`"`) || fe.Tensor != tensor) {
		t.Fatalf("error %q does not name tensor %q", msg, tensor)
	}
	if !strings.Contains(msg, want) {
		t.Fatalf("error %q does not contain %q", msg, want)
	}
}

// A valid 2x2 F32 tensor "w" occupies the first 16 data bytes below.
const wEntry = `"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}`

var data16 = make([]byte, 16)

func TestBadShortFile(t *testing.T) {
	openErr(t, []byte{1, 2, 3}, "", "shorter than the 8-byte header length")
}

func TestBadEmptyFile(t *testing.T) {
	openErr(t, nil, "", "file is 0 bytes")
}

func TestBadHeaderLengthBeyondFile(t *testing.T) {
	b := rawFile(`{}`, nil)
	binary.LittleEndian.PutUint64(b, 64)
	openErr(t, b, "", "header length 64 is beyond the end of the 10-byte file")
}

func TestBadHeaderLengthHuge(t *testing.T) {
	b := rawFile(`{}`, nil)
	binary.LittleEndian.PutUint64(b, 1<<62)
	openErr(t, b, "", "exceeds the 100000000-byte limit")
}

func TestBadHeaderNotJSON(t *testing.T) {
	openErr(t, rawFile(`nonsense`, nil), "", "not a valid JSON object")
}

func TestBadHeaderTruncatedEntry(t *testing.T) {
	openErr(t, rawFile(`{"w":`, nil), "w", "entry is not an object")
}

func TestBadHeaderNotObject(t *testing.T) {
	openErr(t, rawFile(`[1,2]`, nil), "", "want an object")
}

func TestBadHeaderTrailingData(t *testing.T) {
	openErr(t, rawFile(`{} {}`, nil), "", "trailing data")
}

func TestBadHeaderInvalidUTF8(t *testing.T) {
	openErr(t, rawFile("{\"w\xff\":1}", nil), "", "not valid UTF-8")
}

func TestBadEntryNotObject(t *testing.T) {
	openErr(t, rawFile(`{"w":[1]}`, nil), "w", "entry is not an object")
}

func TestBadEntryMissingDType(t *testing.T) {
	openErr(t, rawFile(`{"w":{"shape":[2,2],"data_offsets":[0,16]}}`, data16), "w", "no dtype")
}

func TestBadEntryMissingShape(t *testing.T) {
	openErr(t, rawFile(`{"w":{"dtype":"F32","data_offsets":[0,16]}}`, data16), "w", "no shape")
}

func TestBadEntryMissingOffsets(t *testing.T) {
	openErr(t, rawFile(`{"w":{"dtype":"F32","shape":[2,2]}}`, data16), "w", "no data_offsets")
}

func TestBadUnknownDType(t *testing.T) {
	openErr(t, rawFile(`{"w":{"dtype":"Q4_K","shape":[2,2],"data_offsets":[0,16]}}`, data16), "w", `unknown dtype "Q4_K"`)
}

func TestBadNegativeDim(t *testing.T) {
	openErr(t, rawFile(`{"w":{"dtype":"F32","shape":[-2,-2],"data_offsets":[0,16]}}`, data16), "w", "shape[0] = -2 is negative")
}

func TestBadFractionalDim(t *testing.T) {
	openErr(t, rawFile(`{"w":{"dtype":"F32","shape":[2.5,2],"data_offsets":[0,16]}}`, data16), "w", "shape[0] = 2.5 is not an integer")
}

func TestBadOffsetsEndBeforeBegin(t *testing.T) {
	openErr(t, rawFile(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}}`, data16), "w", "end before begin")
}

func TestBadOffsetsCount(t *testing.T) {
	openErr(t, rawFile(`{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0]}}`, data16), "w", "data_offsets has 1 values")
}

func TestBadOffsetsNegative(t *testing.T) {
	openErr(t, rawFile(`{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[-16,0]}}`, data16), "w", "data_offsets[0] = -16 is negative")
}

func TestBadByteLengthMismatch(t *testing.T) {
	openErr(t, rawFile(`{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}}`, data16), "w",
		"hold 16 bytes but shape (2, 3) of F32 needs 24 bytes")
}

func TestBadShapeOverflow(t *testing.T) {
	openErr(t, rawFile(`{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}`, data16), "w",
		"needs more than 2^64 bits")
}

func TestBadOffsetsBeyondData(t *testing.T) {
	openErr(t, rawFile(`{"w":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]}}`, data16), "w",
		"data_offsets [0, 32] beyond the 16-byte data section")
}

func TestBadOverlappingTensors(t *testing.T) {
	h := `{` + wEntry + `,"v":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`
	openErr(t, rawFile(h, data16), "v", `data_offsets [8, 16] overlap tensor "w" at [0, 16]`)
}

func TestBadDuplicateTensor(t *testing.T) {
	openErr(t, rawFile(`{`+wEntry+`,`+wEntry+`}`, data16), "w", "listed twice")
}

func TestBadMetadataNotStrings(t *testing.T) {
	openErr(t, rawFile(`{"__metadata__":{"step":3},`+wEntry+`}`, data16), "", "__metadata__ is not an object of strings")
}

// Headers with dtypes the engine cannot hold still open; only reading such a
// tensor fails, with a message naming file, tensor and dtype.
func TestUnsupportedDTypeReadsHeaderOnly(t *testing.T) {
	h := `{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"packed":{"dtype":"F4","shape":[3],"data_offsets":[16,16]}}`
	path := writeTemp(t, t.TempDir(), "ids.safetensors", rawFile(h, data16))
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "needs 12 bits") {
		t.Fatalf("F4 with 3 elements (12 bits, not whole bytes): err = %v", err)
	}
	h = `{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"packed":{"dtype":"F4","shape":[4],"data_offsets":[16,18]}}`
	path = writeTemp(t, t.TempDir(), "ids.safetensors", rawFile(h, make([]byte, 18)))
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	info, ok := r.Info("ids")
	if !ok || info.Supported || info.RawDType != "I64" || info.Bytes != 16 {
		t.Fatalf("Info(ids) = %+v, %v", info, ok)
	}
	_, err = r.Tensor("ids")
	if err == nil || !strings.Contains(err.Error(), "unsupported dtype I64") ||
		!strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `"ids"`) {
		t.Fatalf("Tensor(ids) error = %v", err)
	}
}

// writeShards makes an index dir by hand from header literals.
func writeShards(t *testing.T, index string, shards map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range shards {
		writeTemp(t, dir, name, data)
	}
	return writeTemp(t, dir, IndexFileName, []byte(index))
}

func indexErr(t *testing.T, index string, shards map[string][]byte, tensor, want string) {
	t.Helper()
	path := writeShards(t, index, shards)
	r, err := Open(filepath.Dir(path))
	if err == nil {
		r.Close()
		t.Fatalf("Open succeeded, want an error containing %q", want)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) {
		t.Fatalf("error %q does not name the index %s", msg, path)
	}
	if tensor != "" && !strings.Contains(msg, `"`+tensor+`"`) {
		t.Fatalf("error %q does not name tensor %q", msg, tensor)
	}
	if !strings.Contains(msg, want) {
		t.Fatalf("error %q does not contain %q", msg, want)
	}
}

var shardW = rawFile(`{`+wEntry+`}`, data16)

func TestBadIndexShardMissing(t *testing.T) {
	indexErr(t, `{"weight_map":{"w":"a.safetensors","v":"b.safetensors"}}`,
		map[string][]byte{"a.safetensors": shardW}, "v", "b.safetensors listed in weight_map is missing")
}

func TestBadIndexTensorAbsentFromShard(t *testing.T) {
	indexErr(t, `{"weight_map":{"w":"a.safetensors","v":"a.safetensors"}}`,
		map[string][]byte{"a.safetensors": shardW}, "v", "which does not hold it")
}

func TestBadIndexTensorNotListed(t *testing.T) {
	two := rawFile(`{`+wEntry+`,"v":{"dtype":"F32","shape":[],"data_offsets":[16,20]}}`, make([]byte, 20))
	indexErr(t, `{"weight_map":{"w":"a.safetensors"}}`,
		map[string][]byte{"a.safetensors": two}, "v", "weight_map does not list it")
}

func TestBadIndexTensorInWrongShard(t *testing.T) {
	indexErr(t, `{"weight_map":{"w":"a.safetensors"}}`,
		map[string][]byte{"a.safetensors": rawFile(`{}`, nil), "b.safetensors": shardW}, "w", "which does not hold it")
}

func TestBadIndexShardEscapesDir(t *testing.T) {
	indexErr(t, `{"weight_map":{"w":"../a.safetensors"}}`, nil, "w", "want a file name inside")
}

func TestBadIndexNotJSON(t *testing.T) {
	indexErr(t, `{"weight_map":`, nil, "", "not a valid JSON object")
}

func TestBadIndexNoWeightMap(t *testing.T) {
	indexErr(t, `{"metadata":{"total_size":16}}`, nil, "", "no weight_map")
}

func TestBadIndexDuplicateName(t *testing.T) {
	indexErr(t, `{"weight_map":{"w":"a.safetensors","w":"a.safetensors"}}`,
		map[string][]byte{"a.safetensors": shardW}, "w", "listed twice in weight_map")
}

func TestBadIndexBadShard(t *testing.T) {
	path := writeShards(t, `{"weight_map":{"w":"a.safetensors"}}`, map[string][]byte{"a.safetensors": {1, 2}})
	_, err := Open(path)
	shard := filepath.Join(filepath.Dir(path), "a.safetensors")
	if err == nil || !strings.Contains(err.Error(), shard) || !strings.Contains(err.Error(), "shorter than") {
		t.Fatalf("error = %v, want one naming the corrupt shard %s", err, shard)
	}
}

func TestOpenDirWithoutCheckpoint(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), SingleFileName) {
		t.Fatalf("error = %v", err)
	}
	if _, err := Open(filepath.Join(dir, "nope.safetensors")); err == nil || !os.IsNotExist(errors.Unwrap(err)) {
		t.Fatalf("missing file: error = %v, want a wrapped not-exist error", err)
	}
}
