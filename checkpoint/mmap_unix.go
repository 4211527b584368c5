//go:build unix

package checkpoint

import (
	"fmt"
	"os"
	"syscall"
)

// mapFile maps the whole of f read-only. The mapping outlives f's descriptor;
// release it with unmapFile. A file truncated by another process while mapped
// makes later reads fault (SIGBUS), as with any mmap-based loader.
func mapFile(f *os.File, size int64) ([]byte, error) {
	if size == 0 {
		return nil, nil // mmap refuses empty mappings; callers reject such files anyway
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("mmap %s: %d bytes do not fit the address space", f.Name(), size)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	return b, nil
}

func unmapFile(b []byte) error {
	if b == nil {
		return nil
	}
	return syscall.Munmap(b)
}
