package ptxemu_test

import (
	"strings"
	"testing"

	"purpcode/kernels/ptxemu"
)

// FuzzLoadModule: arbitrary text must give a module or an error, never a
// panic or a hang; whatever loads must also launch without one.
func FuzzLoadModule(f *testing.F) {
	for _, s := range []string{collatzPTX, spacesPTX, atomPTX, shflPTX, cpAsyncPTX, mmaPTX, faultsPTX, aluPTX} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		d := ptxemu.NewDevice(ptxemu.Options{MaxSteps: 10000})
		m, err := d.LoadModule([]byte(src))
		if err != nil {
			if strings.Contains(err.Error(), "internal error") {
				t.Fatal(err)
			}
			return
		}
		for _, name := range m.Kernels() {
			k, err := m.Kernel(name)
			if err != nil {
				t.Fatal(err)
			}
			var args [][]byte
			for _, p := range k.Params() {
				args = append(args, make([]byte, p.Size))
			}
			if _, err := d.Launch(k, [3]uint32{1, 1, 1}, [3]uint32{32, 1, 1}, 64, args); err != nil && strings.Contains(err.Error(), "internal error") {
				t.Fatal(err)
			}
		}
	})
}
