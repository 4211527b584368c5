package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"purpcode/dist"
	"purpcode/train"
)

// joinGroup reads the launch environment (torchrun's, Slurm's, or
// `purpcode launch`'s) and, when it describes several ranks, joins them and
// splits the world into tensor-parallel groups of tp neighbouring ranks
// (the shards of one model replica) and data-parallel groups across the
// replicas (dist.NewGrid, TP-innermost as train.Group numbers them). It
// returns the DP group and the TP group (nil when tp is 1). Every rank must
// pass the same resolved cfg: it is the group's fingerprint, so ranks
// started with different configs refuse to train together. A single
// process gets the zero train.DP. A world size that tp does not divide is
// refused before anything connects or is written. close ends the
// connections.
func joinGroup(ctx context.Context, cmd string, cfg any, tp int, stderr io.Writer) (dp train.DP, tpc dist.Comm, close func(), err error) {
	env, err := dist.ParseEnv(os.LookupEnv)
	if err != nil {
		return train.DP{}, nil, nil, fmt.Errorf("%s: %w", cmd, err)
	}
	switch {
	case tp < 1:
		return train.DP{}, nil, nil, fmt.Errorf("%s: tensor_parallel %d: want at least 1", cmd, tp)
	case env.WorldSize%tp != 0:
		how := "start a multiple of it (purpcode launch --nproc-per-node N, torchrun or srun)"
		if env.WorldSize > 1 {
			how = fmt.Sprintf("the launch has %d (WORLD_SIZE); start a multiple of %d", env.WorldSize, tp)
		}
		return train.DP{}, nil, nil, fmt.Errorf("%s: tensor_parallel %d needs a multiple of %d ranks: %s", cmd, tp, tp, how)
	}
	if env.WorldSize == 1 {
		return train.DP{}, nil, func() {}, nil
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return train.DP{}, nil, nil, fmt.Errorf("%s: config fingerprint: %w", cmd, err)
	}
	o := env.Options()
	o.Fingerprint = dist.Fingerprint([]byte(cmd), raw)
	fmt.Fprintf(stderr, "%s: rank %d of %d (%s launch), rendezvous at %s\n", cmd, env.Rank, env.WorldSize, env.Source, o.MasterAddr)
	if tp > 1 && env.LocalWorldSize > 0 && env.WorldSize > env.LocalWorldSize && env.LocalWorldSize%tp != 0 {
		// Every layer all-reduces over the TP group: across nodes that is
		// slow, though correct.
		fmt.Fprintf(stderr, "%s: warning: tensor_parallel %d does not divide the %d ranks per node: some tensor-parallel groups span nodes\n", cmd, tp, env.LocalWorldSize)
	}
	world, err := dist.Connect(ctx, o)
	if err != nil {
		return train.DP{}, nil, nil, fmt.Errorf("%s: join the group of %d ranks: %w", cmd, env.WorldSize, err)
	}
	if tp == 1 {
		return train.DP{Comm: world}, nil, func() { world.Close() }, nil
	}
	tpc, dpc, err := dist.NewGrid(world, tp)
	if err != nil {
		world.Close()
		return train.DP{}, nil, nil, fmt.Errorf("%s: %w", cmd, err)
	}
	fmt.Fprintf(stderr, "%s: tensor-parallel rank %d of %d, data-parallel rank %d of %d\n", cmd, tpc.Rank(), tpc.Size(), dpc.Rank(), dpc.Size())
	// Closing the world ends its groups (they share its connections).
	return train.DP{Comm: dpc}, tpc, func() { world.Close() }, nil
}
