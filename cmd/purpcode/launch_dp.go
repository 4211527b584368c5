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

// joinDataParallel reads the launch environment (torchrun's, Slurm's, or
// `purpcode launch`'s) and, when it describes several ranks, joins the
// group. Every rank must pass the same resolved cfg: it is the group's
// fingerprint, so ranks started with different configs refuse to train
// together. A single process gets the zero train.DP. close ends the
// group's connections.
func joinDataParallel(ctx context.Context, cmd string, cfg any, stderr io.Writer) (dp train.DP, close func(), err error) {
	env, err := dist.ParseEnv(os.LookupEnv)
	if err != nil {
		return train.DP{}, nil, fmt.Errorf("%s: %w", cmd, err)
	}
	if env.WorldSize == 1 {
		return train.DP{}, func() {}, nil
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return train.DP{}, nil, fmt.Errorf("%s: config fingerprint: %w", cmd, err)
	}
	o := env.Options()
	o.Fingerprint = dist.Fingerprint([]byte(cmd), raw)
	fmt.Fprintf(stderr, "%s: rank %d of %d (%s launch), rendezvous at %s\n", cmd, env.Rank, env.WorldSize, env.Source, o.MasterAddr)
	c, err := dist.Connect(ctx, o)
	if err != nil {
		return train.DP{}, nil, fmt.Errorf("%s: join the data-parallel group: %w", cmd, err)
	}
	return train.DP{Comm: c}, func() { c.Close() }, nil
}
