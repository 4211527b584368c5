package checkpoint

import (
	"fmt"

	"purpcode/engine"
)

// TensorSpec declares one tensor of a streamed write: its name, storage
// dtype and shape. Its data comes later, from the writer's fill function.
type TensorSpec struct {
	Name  string
	DType engine.DType
	Shape []int
}

// WriteDirStream is WriteDir for models too large to hold in memory: the
// caller declares every tensor up front (specs, in the order WriteDir would
// be given them, which fixes the sharding) and fill produces one tensor's
// data when the writer reaches it. The files, index, metadata, extra files,
// atomic swap and crash recovery are exactly WriteDir's (it shares the
// implementation), so the same tensors give byte-identical directories.
//
// fill is called exactly once per tensor, in file order: shard after shard,
// and within a shard by dtype (F32, BF16, F16) then name, the order the
// bytes are laid out in. It must return a tensor of the declared dtype and
// shape; anything else, or an error, abandons the write and leaves dir as
// it was (the error wraps fill's). The writer keeps no reference to a
// tensor once its bytes are written, so when fill makes each tensor afresh
// at most one tensor is alive at a time.
func WriteDirStream(dir string, specs []TensorSpec, fill func(name string) (*engine.Tensor, error), opts WriteOptions) error {
	if fill == nil {
		return fmt.Errorf("checkpoint: write dir %s: no fill function", dir)
	}
	plan := func() ([]planned, error) { return validateSpecs(specs) }
	return writeDirStream(dir, opts, nil, plan, func(p planned) (*engine.Tensor, error) { return fill(p.name) })
}

// validateSpecs checks the declared tensors as validateTensors checks held
// ones, short of their data.
func validateSpecs(specs []TensorSpec) ([]planned, error) {
	seen := make(map[string]bool, len(specs))
	out := make([]planned, len(specs))
	for i, s := range specs {
		if err := claimName(i, s.Name, seen); err != nil {
			return nil, err
		}
		p, err := planTensor(s.Name, s.DType, append([]int(nil), s.Shape...))
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}
