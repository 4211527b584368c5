package tokenizer

import (
	"hash/maphash"
	"sync"
)

// wordCache memoizes the BPE result of frequent pre-tokens (code repeats
// identifiers and indentation constantly). It is sharded to keep lock
// contention low under concurrent encoding and stops growing at capacity,
// like HF's, so memory stays bounded without eviction bookkeeping.
type wordCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const (
	cacheShards   = 16
	cacheShardCap = 4096
	cacheMaxWord  = 64 // longer pre-tokens are rare and not worth the memory
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]cachedWord
}

// cachedWord holds the ids of a word and their byte lengths.
type cachedWord struct {
	ids  []int32
	lens []int32
}

func newWordCache() *wordCache {
	c := &wordCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cachedWord)
	}
	return c
}

func (c *wordCache) shard(word string) *cacheShard {
	return &c.shards[maphash.String(c.seed, word)%cacheShards]
}

func (c *wordCache) get(word string) (cachedWord, bool) {
	s := c.shard(word)
	s.mu.RLock()
	w, ok := s.m[word]
	s.mu.RUnlock()
	return w, ok
}

func (c *wordCache) put(word string, ids []int, lens []int32) {
	s := c.shard(word)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= cacheShardCap {
		return
	}
	if _, ok := s.m[word]; ok {
		return
	}
	w := cachedWord{ids: make([]int32, len(ids)), lens: append([]int32(nil), lens...)}
	for i, id := range ids {
		w.ids[i] = int32(id)
	}
	s.m[string([]byte(word))] = w
}
