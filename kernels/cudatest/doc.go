// Package cudatest opens the CUDA device that kernel conformance tests run
// on and wraps the calls they make, so that the same test runs on the PTX
// emulator (kernels/ptxemu, every `make test`) and on a real GPU
// (scripts/gpu-check.sh): the test binary's -cuda-device flag picks one.
//
// It is test support: only _test.go files import it. It does not decide
// whether a missing NVRTC skips or fails a test; Open reports that as
// ErrNoNVRTC and the test hands it to internal/testref.Missing, which
// fails under CI=true.
package cudatest
