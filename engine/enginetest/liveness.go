package enginetest

import (
	"runtime"
	"weak"

	"purpcode/engine"
)

// Liveness follows tensors' data arrays through weak pointers, so a test
// can count how many are still reachable after a full collection. A tensor
// tracked twice (read, then passed on unconverted) counts once. The zero
// value is ready to use.
type Liveness struct {
	f32  map[weak.Pointer[float32]]bool
	half map[weak.Pointer[uint16]]bool
}

// Track starts following t's data.
func (l *Liveness) Track(t *engine.Tensor) {
	if l.f32 == nil {
		l.f32, l.half = map[weak.Pointer[float32]]bool{}, map[weak.Pointer[uint16]]bool{}
	}
	if len(t.F32) > 0 {
		l.f32[weak.Make(&t.F32[0])] = true
	}
	if len(t.Half) > 0 {
		l.half[weak.Make(&t.Half[0])] = true
	}
}

// Count collects garbage and returns how many tracked arrays are still
// reachable.
func (l *Liveness) Count() int {
	runtime.GC() // blocks until marking and sweeping are done: weak pointers to garbage read nil
	n := 0
	for w := range l.f32 {
		if w.Value() != nil {
			n++
		}
	}
	for w := range l.half {
		if w.Value() != nil {
			n++
		}
	}
	return n
}
