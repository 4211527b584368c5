package kernels

import "errors"

// errNoCgo is every CUDA loader's error in a binary built without cgo.
var errNoCgo = errors.New("binary built without cgo (CGO_ENABLED=0): CUDA libraries cannot be loaded")
