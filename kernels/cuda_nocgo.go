//go:build !cgo

package kernels

import "unsafe"

// Without cgo nothing can be dlopen'd: every loader returns errNoCgo and the
// methods below are unreachable (no Driver, NVRTC or CublasLt value can be
// built).

const cgoAvailable = false

type dlLib struct{}

func (l *dlLib) close() {}

func nvrtcOpen(string) (*dlLib, int, int, error)  { return nil, 0, 0, errNoCgo }
func driverOpen(string) (*dlLib, error)           { return nil, errNoCgo }
func cublasLtOpen(string) (*dlLib, uint64, error) { return nil, 0, errNoCgo }
func (n *NVRTC) compile(string, string, []string, bool) ([]byte, string, error) {
	return nil, "", errNoCgo
}
func (d *Driver) init() (int, error)                         { return 0, errNoCgo }
func (d *Driver) deviceCount() (int, error)                  { return 0, errNoCgo }
func (d *Driver) device(int) (DeviceInfo, error)             { return DeviceInfo{}, errNoCgo }
func (d *Driver) ctxCreate(int) (unsafe.Pointer, error)      { return nil, errNoCgo }
func (d *Driver) primaryRetain(int) (unsafe.Pointer, error)  { return nil, errNoCgo }
func (c *Context) destroy() error                            { return errNoCgo }
func (c *Context) moduleLoad([]byte) (unsafe.Pointer, error) { return nil, errNoCgo }
func (c *Context) moduleFunction(unsafe.Pointer, string) (unsafe.Pointer, error) {
	return nil, errNoCgo
}
func (c *Context) funcSetAttr(unsafe.Pointer, int, int) error                { return errNoCgo }
func (c *Context) memAlloc(uint64) (DevicePtr, error)                        { return 0, errNoCgo }
func (c *Context) memFree(DevicePtr) error                                   { return errNoCgo }
func (c *Context) htod(DevicePtr, unsafe.Pointer, uint64) error              { return errNoCgo }
func (c *Context) dtoh(unsafe.Pointer, DevicePtr, uint64) error              { return errNoCgo }
func (c *Context) htodAsync(DevicePtr, unsafe.Pointer, uint64, Stream) error { return errNoCgo }
func (c *Context) dtohAsync(unsafe.Pointer, DevicePtr, uint64, Stream) error { return errNoCgo }
func (c *Context) memsetAsync(DevicePtr, uint64, Stream) error               { return errNoCgo }
func (c *Context) streamCreate() (unsafe.Pointer, error)                     { return nil, errNoCgo }
func (c *Context) ctxCall(string, string, unsafe.Pointer) error              { return errNoCgo }
func (c *Context) allocHost(uint64) (unsafe.Pointer, error)                  { return nil, errNoCgo }
func (c *Context) launch(unsafe.Pointer, Dim3, Dim3, uint32, Stream, []uint64) error {
	return errNoCgo
}
func (l *CublasLt) create(*Context) (unsafe.Pointer, error)     { return nil, errNoCgo }
func (l *CublasLt) destroyObj(string, unsafe.Pointer) error     { return errNoCgo }
func (l *CublasLt) descCreate(int, int) (unsafe.Pointer, error) { return nil, errNoCgo }
func (l *CublasLt) setAttr(string, unsafe.Pointer, int, unsafe.Pointer, uintptr) error {
	return errNoCgo
}
func (l *CublasLt) layoutCreate(int, uint64, uint64, int64) (unsafe.Pointer, error) {
	return nil, errNoCgo
}
func (l *CublasLt) prefCreate() (unsafe.Pointer, error)                          { return nil, errNoCgo }
func (l *CublasLt) heuristic(unsafe.Pointer, *LtGemm, *LtHeuristic) (int, error) { return 0, errNoCgo }
func (l *CublasLt) matmul(*Context, unsafe.Pointer, *LtGemm, *float32, *float32, DevicePtr, DevicePtr, DevicePtr, DevicePtr, DevicePtr, Stream) error {
	return errNoCgo
}
