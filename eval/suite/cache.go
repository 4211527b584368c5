package suite

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// Cache keeps generations on disk, keyed by (model fingerprint, prompt
// hash, sampling settings), one JSON line per answer appended as soon as
// it arrives: an interrupted or repeated eval resumes and re-scores without
// regenerating. Errors are never cached.
type Cache struct {
	path string
	mu   sync.Mutex
	m    map[string]string
	f    *os.File
	w    *bufio.Writer
}

type cacheLine struct {
	Key  string `json:"key"`
	Text string `json:"text"`
}

// CacheKey hashes what determines an answer.
func CacheKey(fingerprint string, msgs []Message, s Sampling) string {
	b, err := json.Marshal(struct {
		F string    `json:"f"`
		M []Message `json:"m"`
		S Sampling  `json:"s"`
	}{fingerprint, msgs, s})
	if err != nil {
		panic("suite: cache key of plain data: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// OpenCache reads path (when it exists) and opens it for appending. A
// torn last line (the process was killed mid-write) is ignored.
func OpenCache(path string) (*Cache, error) {
	c := &Cache{path: path, m: map[string]string{}}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("open cache: %w", err)
	default:
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var l cacheLine
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Key != "" {
				c.m[l.Key] = l.Text
			}
		}
		err := sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read cache %s: %w", path, err)
		}
	}
	c.f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open cache: %w", err)
	}
	c.w = bufio.NewWriter(c.f)
	return c, nil
}

// Get returns a cached answer.
func (c *Cache) Get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[key]
	return t, ok
}

// Put records an answer and writes it through.
func (c *Cache) Put(key, text string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = text
	b, err := json.Marshal(cacheLine{key, text})
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	c.w.Write(append(b, '\n'))
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("write cache %s: %w", c.path, err)
	}
	return nil
}

// Len is the number of cached answers.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Close closes the file.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.w.Flush(); err != nil {
		c.f.Close()
		return fmt.Errorf("write cache: %w", err)
	}
	return c.f.Close()
}
