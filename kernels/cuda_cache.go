package kernels

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PTXCache stores compiled PTX on disk, one file per key. A nil *PTXCache
// or one with an empty Dir caches nothing. Files are written to a temporary
// name in the same directory and renamed, so concurrent processes sharing a
// cache never see a partial file.
type PTXCache struct {
	Dir string
}

// PTXCacheKey identifies a compilation: the SHA-256 of the full source and
// the options, the virtual architecture and the NVRTC version. It is a
// valid file name.
func PTXCacheKey(src, arch, nvrtcVersion string, opts []string) string {
	h := sha256.New()
	h.Write([]byte(src))
	for _, o := range opts {
		h.Write([]byte{0})
		h.Write([]byte(o))
	}
	return fmt.Sprintf("%s-%s-nvrtc%s", hex.EncodeToString(h.Sum(nil)), arch, strings.ReplaceAll(nvrtcVersion, "/", "_"))
}

func (c *PTXCache) path(key string) string { return filepath.Join(c.Dir, key+".ptx") }

// Get returns the cached PTX for key. A file that does not end with the NUL
// terminator Compile keeps is treated as absent (truncated by a crash of a
// writer that did not use Put).
func (c *PTXCache) Get(key string) ([]byte, bool) {
	if c == nil || c.Dir == "" {
		return nil, false
	}
	b, err := os.ReadFile(c.path(key))
	if err != nil || len(b) == 0 || b[len(b)-1] != 0 {
		return nil, false
	}
	return b, true
}

// Put stores ptx under key atomically (temporary file + rename).
func (c *PTXCache) Put(key string, ptx []byte) error {
	if c == nil || c.Dir == "" {
		return nil
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return fmt.Errorf("ptx cache %s: %w", c.Dir, err)
	}
	f, err := os.CreateTemp(c.Dir, key+".tmp*")
	if err != nil {
		return fmt.Errorf("ptx cache %s: %w", c.Dir, err)
	}
	tmp := f.Name()
	_, werr := f.Write(ptx)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, c.path(key))
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("ptx cache write %s: %w", c.path(key), werr)
	}
	return nil
}
