package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// openIndex opens the shards of a model.safetensors.index.json and checks
// that the weight map and the shards agree exactly, so that a missing or
// stray tensor is found at open time rather than in the middle of a load.
func openIndex(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if st.Size() > MaxHeaderBytes {
		f.Close()
		return nil, formatErr(path, "", "index is %d bytes, over the %d-byte limit", st.Size(), MaxHeaderBytes)
	}
	data := make([]byte, st.Size())
	_, err = f.ReadAt(data, 0)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("checkpoint: read %s: %w", path, err)
	}
	weightMap, err := parseIndex(path, data)
	if err != nil {
		return nil, err
	}

	byShard := map[string][]string{}
	for name, shard := range weightMap {
		if !plainFileName(shard) {
			return nil, formatErr(path, name, "weight_map names shard %q, want a file name inside the index's directory", shard)
		}
		byShard[shard] = append(byShard[shard], name)
	}
	shards := make([]string, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	sort.Strings(shards)

	dir := filepath.Dir(path)
	var files []*mapped
	fail := func(err error) (*Reader, error) {
		for _, m := range files {
			_ = unmapFile(m.data) // the format error is the one worth reporting
		}
		return nil, err
	}
	for _, shard := range shards {
		names := byShard[shard]
		sort.Strings(names)
		shardPath := filepath.Join(dir, shard)
		if ok, err := isFile(shardPath); err != nil {
			return fail(err)
		} else if !ok {
			return fail(formatErr(path, names[0], "shard %s listed in weight_map is missing", shardPath))
		}
		m, err := openMapped(shardPath)
		if err != nil {
			return fail(err)
		}
		files = append(files, m)
		for _, name := range names {
			if _, ok := m.hdr.entries[name]; !ok {
				return fail(formatErr(path, name, "weight_map places it in %s, which does not hold it", shardPath))
			}
		}
		inShard := make([]string, 0, len(m.hdr.entries))
		for name := range m.hdr.entries {
			inShard = append(inShard, name)
		}
		sort.Strings(inShard)
		for _, name := range inShard {
			if listed, ok := weightMap[name]; !ok {
				return fail(formatErr(path, name, "shard %s holds it but weight_map does not list it", shardPath))
			} else if listed != shard {
				return fail(formatErr(path, name, "shard %s holds it but weight_map places it in %s", shardPath, listed))
			}
		}
	}
	return newReader(path, files), nil
}

// parseIndex returns the weight_map of an index file, rejecting duplicate
// tensor names. Other top-level keys (metadata.total_size, ...) are
// informative only and not checked.
func parseIndex(path string, data []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var weightMap map[string]string
	err := decodeObject(dec, func(key string) error {
		if key != "weight_map" {
			var skip json.RawMessage
			return dec.Decode(&skip)
		}
		if weightMap != nil {
			return formatErr(path, "", "weight_map appears twice")
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return formatErr(path, "", "weight_map is %s, want an object", describeToken(tok))
		}
		weightMap = map[string]string{}
		return decodeFields(dec, func(name string) error {
			var shard string
			if err := dec.Decode(&shard); err != nil {
				return formatErr(path, name, "weight_map value is not a file name string: %v", err)
			}
			if _, dup := weightMap[name]; dup {
				return formatErr(path, name, "listed twice in weight_map")
			}
			weightMap[name] = shard
			return nil
		})
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, formatErr(path, "", "index is not a valid JSON object: %v", err)
	}
	if weightMap == nil {
		return nil, formatErr(path, "", "index has no weight_map")
	}
	return weightMap, nil
}

// plainFileName reports whether s names a file directly inside a directory,
// so that an index cannot point a reader outside its checkpoint.
func plainFileName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`) && !strings.ContainsRune(s, 0)
}

// indexJSON is the index layout transformers writes: metadata.total_size is
// the sum of the tensors' byte sizes, weight_map maps each name to its shard.
type indexJSON struct {
	Metadata  indexMetadata     `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

type indexMetadata struct {
	TotalSize int64 `json:"total_size"`
}

// encodeIndex renders an index as transformers does (two-space indent,
// sorted keys, trailing newline), without HTML escaping of names.
func encodeIndex(total int64, weightMap map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(indexJSON{Metadata: indexMetadata{TotalSize: total}, WeightMap: weightMap}); err != nil {
		return nil, fmt.Errorf("checkpoint: encode index: %w", err)
	}
	return buf.Bytes(), nil
}
