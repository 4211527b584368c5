package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sort"
	"strconv"
	"unicode/utf8"

	"purpcode/engine"
)

// MaxHeaderBytes bounds the JSON header of a safetensors file. It is the
// reference library's limit; it keeps a corrupt length field from turning
// into a huge allocation.
const MaxHeaderBytes = 100_000_000

// metadataKey is the reserved header key holding free-form string metadata.
const metadataKey = "__metadata__"

// FormatError reports a malformed safetensors file or index. File is the
// path of the offending file; Tensor is empty when the problem is not tied to
// one tensor.
type FormatError struct {
	File   string
	Tensor string
	Msg    string
}

func (e *FormatError) Error() string {
	if e.Tensor != "" {
		return fmt.Sprintf("safetensors %s: tensor %q: %s", e.File, e.Tensor, e.Msg)
	}
	return fmt.Sprintf("safetensors %s: %s", e.File, e.Msg)
}

func formatErr(file, tensor, format string, args ...any) error {
	return &FormatError{File: file, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
}

// stDType describes one safetensors dtype. Sizes are in bits because the
// format has sub-byte types (F4, F6_*), whose tensors must still fill whole
// bytes.
type stDType struct {
	bits      uint64
	engine    engine.DType
	supported bool // readable into an engine.Tensor
}

// stDTypes lists every dtype the reference library knows, so that headers of
// integer or fp8 checkpoints still parse and only Tensor() refuses them.
var stDTypes = map[string]stDType{
	"BOOL": {bits: 8}, "U8": {bits: 8}, "I8": {bits: 8},
	"F4": {bits: 4}, "F6_E2M3": {bits: 6}, "F6_E3M2": {bits: 6},
	"F8_E5M2": {bits: 8}, "F8_E4M3": {bits: 8}, "F8_E8M0": {bits: 8},
	"I16": {bits: 16}, "U16": {bits: 16},
	"F16":  {bits: 16, engine: engine.F16, supported: true},
	"BF16": {bits: 16, engine: engine.BF16, supported: true},
	"I32":  {bits: 32}, "U32": {bits: 32},
	"F32": {bits: 32, engine: engine.F32, supported: true},
	"C64": {bits: 64}, "F64": {bits: 64}, "I64": {bits: 64}, "U64": {bits: 64},
}

// entry is one tensor of a parsed header. Offsets are relative to the start
// of the data section, as in the file.
type entry struct {
	name      string
	rawDType  string
	dtype     engine.DType
	supported bool
	shape     []int
	begin     int64
	end       int64
}

// header is a parsed and validated safetensors header.
type header struct {
	metadata  map[string]string
	entries   map[string]*entry
	dataStart int64 // absolute offset of the data section: 8 + header length
}

// parseHeader validates the whole layout of a safetensors file held in buf
// (its full contents). After it succeeds every tensor lies inside buf, so
// slicing it cannot panic.
func parseHeader(file string, buf []byte) (*header, error) {
	if len(buf) < 8 {
		return nil, formatErr(file, "", "file is %d bytes, shorter than the 8-byte header length field", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if n > MaxHeaderBytes {
		return nil, formatErr(file, "", "header length %d exceeds the %d-byte limit", n, MaxHeaderBytes)
	}
	if n > uint64(len(buf)-8) {
		return nil, formatErr(file, "", "header length %d is beyond the end of the %d-byte file", n, len(buf))
	}
	raw := buf[8 : 8+n]
	if !utf8.Valid(raw) {
		return nil, formatErr(file, "", "header is not valid UTF-8")
	}
	h := &header{entries: map[string]*entry{}, dataStart: int64(8 + n)}
	dataLen := int64(len(buf)) - h.dataStart

	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	err := decodeObject(dec, func(key string) error {
		if key == metadataKey {
			var m map[string]string
			if err := dec.Decode(&m); err != nil {
				return formatErr(file, "", "%s is not an object of strings: %v", metadataKey, err)
			}
			h.metadata = m
			return nil
		}
		if _, dup := h.entries[key]; dup {
			return formatErr(file, key, "listed twice in the header")
		}
		e, err := parseEntry(file, key, dec, dataLen)
		if err != nil {
			return err
		}
		h.entries[key] = e
		return nil
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, formatErr(file, "", "header is not a valid JSON object: %v", err)
	}
	if err := checkOverlap(file, h.entries); err != nil {
		return nil, err
	}
	return h, nil
}

// decodeObject walks one JSON object token by token, calling field for each
// key with the decoder positioned at the value, and requires nothing but
// whitespace after it. Going through tokens rather than a map is what lets
// callers see duplicate keys, which a map would silently merge.
func decodeObject(dec *json.Decoder, field func(key string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("top level is %s, want an object", describeToken(tok))
	}
	if err := decodeFields(dec, field); err != nil {
		return err
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return err
		}
		return fmt.Errorf("trailing data after the object: %s", describeToken(tok))
	}
	return nil
}

// decodeFields reads key/value pairs up to and including the closing brace
// of an object whose opening brace was already consumed.
func decodeFields(dec *json.Decoder, field func(key string) error) error {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("object key is %s", describeToken(tok))
		}
		if err := field(key); err != nil {
			return err
		}
	}
	_, err := dec.Token() // the closing brace; More() already checked it is there
	return err
}

func describeToken(tok any) string {
	switch v := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

type rawEntry struct {
	DType       *string        `json:"dtype"`
	Shape       *[]json.Number `json:"shape"`
	DataOffsets *[]json.Number `json:"data_offsets"`
}

func parseEntry(file, name string, dec *json.Decoder, dataLen int64) (*entry, error) {
	var r rawEntry
	if err := dec.Decode(&r); err != nil {
		return nil, formatErr(file, name, "entry is not an object with dtype, shape and data_offsets: %v", err)
	}
	switch {
	case r.DType == nil:
		return nil, formatErr(file, name, "entry has no dtype")
	case r.Shape == nil:
		return nil, formatErr(file, name, "entry has no shape")
	case r.DataOffsets == nil:
		return nil, formatErr(file, name, "entry has no data_offsets")
	}
	dt, ok := stDTypes[*r.DType]
	if !ok {
		return nil, formatErr(file, name, "unknown dtype %q", *r.DType)
	}
	e := &entry{name: name, rawDType: *r.DType, dtype: dt.engine, supported: dt.supported}

	e.shape = make([]int, len(*r.Shape))
	numel, overflow := uint64(1), false
	for i, num := range *r.Shape {
		d, err := strconv.Atoi(num.String())
		if err != nil {
			return nil, formatErr(file, name, "shape[%d] = %s is not an integer", i, num)
		}
		if d < 0 {
			return nil, formatErr(file, name, "shape[%d] = %d is negative", i, d)
		}
		e.shape[i] = d
		hi, lo := bits.Mul64(numel, uint64(d))
		overflow = overflow || hi != 0
		numel = lo
	}

	if len(*r.DataOffsets) != 2 {
		return nil, formatErr(file, name, "data_offsets has %d values, want [begin, end]", len(*r.DataOffsets))
	}
	var off [2]int64
	for i, num := range *r.DataOffsets {
		v, err := strconv.ParseInt(num.String(), 10, 64)
		if err != nil {
			return nil, formatErr(file, name, "data_offsets[%d] = %s is not a 64-bit integer", i, num)
		}
		if v < 0 {
			return nil, formatErr(file, name, "data_offsets[%d] = %d is negative", i, v)
		}
		off[i] = v
	}
	e.begin, e.end = off[0], off[1]
	if e.end < e.begin {
		return nil, formatErr(file, name, "data_offsets [%d, %d] end before begin", e.begin, e.end)
	}
	if e.end > dataLen {
		return nil, formatErr(file, name, "data_offsets [%d, %d] beyond the %d-byte data section", e.begin, e.end, dataLen)
	}
	nbytes := uint64(e.end - e.begin)
	hi, nbits := bits.Mul64(numel, dt.bits)
	if overflow || hi != 0 || nbits%8 != 0 || nbits/8 != nbytes {
		want := "more than 2^64 bits"
		if !overflow && hi == 0 {
			want = fmt.Sprintf("%d bits", nbits)
			if nbits%8 == 0 {
				want = fmt.Sprintf("%d bytes", nbits/8)
			}
		}
		return nil, formatErr(file, name, "data_offsets [%d, %d] hold %d bytes but shape %s of %s needs %s",
			e.begin, e.end, nbytes, engine.ShapeString(e.shape), e.rawDType, want)
	}
	return e, nil
}

// checkOverlap rejects tensors sharing bytes. Gaps between tensors are
// accepted (the reference library never writes them, but they are harmless).
func checkOverlap(file string, entries map[string]*entry) error {
	list := make([]*entry, 0, len(entries))
	for _, e := range entries {
		if e.end > e.begin {
			list = append(list, e)
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].begin != list[j].begin {
			return list[i].begin < list[j].begin
		}
		return list[i].name < list[j].name
	})
	for i := 1; i < len(list); i++ {
		prev, cur := list[i-1], list[i]
		if cur.begin < prev.end {
			return formatErr(file, cur.name, "data_offsets [%d, %d] overlap tensor %q at [%d, %d]",
				cur.begin, cur.end, prev.name, prev.begin, prev.end)
		}
	}
	return nil
}

// appendJSONString quotes s the way serde_json does (the reference writer):
// only quote, backslash and control characters are escaped, everything else
// (HTML characters, non-ASCII) is written as raw UTF-8. encoding/json escapes
// more, which would break byte-identical output.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b = append(b, '\\', '"')
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// sortedKeys returns the keys of m in byte order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validName reports whether s can be a tensor name in a header.
func validName(s string) bool {
	return s != "" && s != metadataKey && utf8.ValidString(s)
}
