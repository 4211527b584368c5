//go:build !cgo

package kernels

import "unsafe"

// Without cgo LoadNCCL returns errNoCgo, so no NCCL value exists and these
// are unreachable.

func ncclOpen(string) (*dlLib, error)                                                { return nil, errNoCgo }
func ncclHasSym(*dlLib, string) bool                                                 { return false }
func (n *NCCL) getVersion() (int, error)                                             { return 0, errNoCgo }
func (n *NCCL) getUniqueID(*NCCLUniqueID) int                                        { return 1 }
func (n *NCCL) commInitRank(*Context, *NCCLUniqueID, int, int) (unsafe.Pointer, int) { return nil, 1 }
func (n *NCCL) allReduce(*NCCLComm, DevicePtr, DevicePtr, int, NCCLDataType, NCCLRedOp, Stream) int {
	return 1
}
func (n *NCCL) reduceScatter(*NCCLComm, DevicePtr, DevicePtr, int, NCCLDataType, NCCLRedOp, Stream) int {
	return 1
}
func (n *NCCL) allGather(*NCCLComm, DevicePtr, DevicePtr, int, NCCLDataType, Stream) int { return 1 }
func (n *NCCL) broadcast(*NCCLComm, DevicePtr, DevicePtr, int, NCCLDataType, int, Stream) int {
	return 1
}
func (n *NCCL) commFree(*NCCLComm, string) int       { return 1 }
func (n *NCCL) asyncError(unsafe.Pointer) (int, int) { return 0, 1 }
func (n *NCCL) errorString(int) string               { return errNoCgo.Error() }
func (n *NCCL) lastError(unsafe.Pointer) string      { return "" }
