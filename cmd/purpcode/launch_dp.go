package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"time"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/engine/cuda"
	"purpcode/kernels"
	"purpcode/train"
)

// distBackend is the value of --dist-backend: which dist.Comm carries the
// collectives between the ranks of a launch.
type distBackend string

const (
	// distAuto is NCCL when every rank computes on a real GPU and loads
	// NCCL, else the CPU backend: one rank without decides for all, since
	// the ranks of a group must run the same backend.
	distAuto = "auto"
	// distCPU is dist's TCP mesh (host memory, any device).
	distCPU = "cpu"
	// distNCCL requires NCCL: a rank that cannot use it fails.
	distNCCL = "nccl"
)

func (d *distBackend) String() string { return string(*d) }

func (d *distBackend) Set(s string) error {
	switch s {
	case distAuto, distCPU, distNCCL:
		*d = distBackend(s)
		return nil
	}
	return fmt.Errorf("want %s, %s or %s, got %q", distAuto, distCPU, distNCCL, s)
}

// addDistBackendFlag registers --dist-backend (default auto) on fs.
func addDistBackendFlag(fs *flag.FlagSet) *distBackend {
	d := distBackend(distAuto)
	fs.Var(&d, "dist-backend", "collectives between the ranks of a launch: auto (nccl when every rank computes on a GPU and loads libnccl.so.2, else cpu; the choice is logged), cpu (TCP between the processes, any device) or nccl (required; searched like the other CUDA libraries, --cuda-libs)")
	return &d
}

// rankRun is what a trainer's process runs on: its compute backend and its
// place in the launch's groups (the zero train.DP and a nil TP for a
// single process).
type rankRun struct {
	be engine.Backend
	dp train.DP
	tp dist.Comm
	// close ends the groups' communicators, then the backend.
	close func()
}

// openRank opens a trainer's compute backend and joins the launch's groups
// (see joinGroup), in the order NCCL needs: the launch environment first
// (a bad one is refused before anything is opened), then the backend, in
// the GPU's primary context when there are several ranks (NCCL binds the
// primary context), on the GPU LOCAL_RANK names when --device cuda sees
// several (rankGPU), then the CPU rendezvous, then the NCCL communicators
// of the tensor- and data-parallel groups, each made over its CPU group
// (rank 0 of the group sends the unique id over it; groups of one rank
// keep the CPU group, having nothing to send).
//
// --dist-backend nccl on a device that is not a GPU, or where NCCL does
// not load, is refused before the rendezvous, so a rank does not wait for
// peers it will not train with. After the rendezvous the ranks agree
// (agreeOnNCCL): auto takes NCCL only when every rank can, and two ranks
// on one GPU (which NCCL refuses) make auto take the CPU backend and nccl
// fail on every rank. World rank 0 logs the choice once.
func openRank(ctx context.Context, cmd string, cfg any, tp int, cf *cpuFlags, stderr io.Writer) (rankRun, error) {
	env, err := launchEnv(cmd, tp)
	if err != nil {
		return rankRun{}, err
	}
	mode := distBackend(distAuto)
	if cf.dist != nil {
		mode = *cf.dist
	}
	dev, rep, err := cf.dev.resolveReport(stderr)
	if err != nil {
		return rankRun{}, err
	}
	gpus := 0
	if rep != nil {
		gpus = len(rep.Devices)
	}
	if dev, err = rankGPU(dev, env.LocalRank, gpus); err != nil {
		return rankRun{}, fmt.Errorf("%s: %w", cmd, err)
	}
	// Whether this rank can run NCCL, and why not.
	var lib *kernels.NCCL
	why := ""
	switch {
	case mode == distCPU:
	case !isGPU(dev):
		why = fmt.Sprintf("the device is %s, not a CUDA GPU", dev)
	default:
		if lib, err = kernels.LoadNCCL(cf.dev.libOptions()); err != nil {
			why = err.Error()
		}
	}
	if mode == distNCCL && why != "" {
		return rankRun{}, fmt.Errorf("%s --dist-backend nccl: %s (--dist-backend auto falls back to the CPU backend)", cmd, why)
	}
	be, closeBE, err := cf.dev.openDevice(dev, cf, env.WorldSize > 1, stderr)
	if err != nil {
		return rankRun{}, err
	}
	if env.WorldSize == 1 {
		return rankRun{be: be, close: closeBE}, nil
	}
	world, tpc, dpc, err := joinGroup(ctx, cmd, env, cfg, string(mode), tp, stderr)
	if err != nil {
		closeBE()
		return rankRun{}, err
	}
	leave := func() {
		// Closing the world ends its groups (they share its connections).
		world.Close()
		closeBE()
	}
	if mode == distCPU {
		if world.Rank() == 0 {
			fmt.Fprintf(stderr, "%s: collectives over the CPU backend (TCP between the %d ranks): --dist-backend cpu\n", cmd, world.Size())
		}
		return rankRun{be: be, dp: train.DP{Comm: dpc}, tp: tpc, close: leave}, nil
	}
	// Every rank must pick the same backend: agree on who cannot use NCCL,
	// and on ranks sharing a GPU (NCCL refuses two ranks of a communicator
	// on one device).
	ag, err := agreeOnNCCL(ctx, world, why, gpuKey(dev))
	if err != nil {
		leave()
		return rankRun{}, fmt.Errorf("%s: agreeing on the collectives' backend: %w", cmd, err)
	}
	if !ag.ok() {
		if mode == distNCCL {
			leave()
			return rankRun{}, fmt.Errorf("%s --dist-backend nccl: %s", cmd, ag.reason(why))
		}
		if why != "" && world.Rank() != 0 {
			fmt.Fprintf(stderr, "%s: rank %d cannot use NCCL: %s\n", cmd, world.Rank(), why)
		}
		if world.Rank() == 0 {
			fmt.Fprintf(stderr, "%s: collectives over the CPU backend (TCP between the %d ranks): --dist-backend auto, and %s\n", cmd, world.Size(), ag.reason(why))
		}
		return rankRun{be: be, dp: train.DP{Comm: dpc}, tp: tpc, close: leave}, nil
	}
	gpu, ok := be.(*cuda.Backend)
	if !ok {
		leave()
		return rankRun{}, fmt.Errorf("%s: nccl: the backend %s is not a CUDA device", cmd, be.Name())
	}
	// A rank that never joins leaves the others waiting in
	// ncclCommInitRank: bound it as the rendezvous is bounded.
	ictx, cancel := context.WithTimeout(ctx, ncclInitTimeout)
	defer cancel()
	var nccls []*dist.NCCLComm
	leaveAll := func() {
		for _, c := range nccls {
			_ = c.Close()
		}
		leave()
	}
	// Groups of one rank have nothing to send: they keep the CPU group.
	// Every rank makes its TP communicator before its DP one, so the
	// inits pair up across ranks.
	wrap := func(c dist.Comm, what string) (dist.Comm, error) {
		if c == nil || c.Size() == 1 {
			return c, nil
		}
		n, err := dist.NewNCCL(ictx, c, lib, gpu.NCCLDevice())
		if err != nil {
			return nil, fmt.Errorf("%s: the %s group's NCCL communicator (--dist-backend cpu runs without NCCL): %w", cmd, what, err)
		}
		nccls = append(nccls, n)
		return n, nil
	}
	if tpc, err = wrap(tpc, "tensor-parallel"); err == nil {
		dpc, err = wrap(dpc, "data-parallel")
	}
	if err != nil {
		leaveAll()
		return rankRun{}, err
	}
	if world.Rank() == 0 {
		fmt.Fprintf(stderr, "%s: collectives over NCCL %s (%s), one GPU per rank\n", cmd, lib.VersionString(), lib.Path)
	}
	return rankRun{be: be, dp: train.DP{Comm: dpc}, tp: tpc, close: leaveAll}, nil
}

// ncclInitTimeout bounds the NCCL communicators' set-up, as
// dist.Options.ConnectTimeout's default bounds the rendezvous.
const ncclInitTimeout = 2 * time.Minute

// ncclAgreement is what the ranks of a launch tell each other before
// choosing NCCL: which of them cannot use it, and two that compute on the
// same GPU (-1 when none do).
type ncclAgreement struct {
	without        []int
	shareA, shareB int
}

func (a ncclAgreement) ok() bool { return len(a.without) == 0 && a.shareA < 0 }

// reason says, on rank 0's log, why NCCL is not used: rank 0's own reason
// (why) when it has one.
func (a ncclAgreement) reason(why string) string {
	switch {
	case len(a.without) > 0 && a.without[0] == 0 && why != "":
		return "rank 0 cannot use NCCL: " + why
	case len(a.without) > 0:
		return fmt.Sprintf("ranks %v cannot use NCCL (their logs say why)", a.without)
	}
	return fmt.Sprintf("ranks %d and %d compute on the same GPU, and NCCL needs a GPU per rank (with several GPUs visible, --device cuda picks the one LOCAL_RANK names; cuda:N or CUDA_VISIBLE_DEVICES name one per rank)", a.shareA, a.shareB)
}

// agreeOnNCCL exchanges every rank's reason against NCCL (why, "" for
// none) and its GPU's key (gpuKey) in one all-reduce, so that every rank
// reaches the same decision.
func agreeOnNCCL(ctx context.Context, world dist.Comm, why string, key [2]float32) (ncclAgreement, error) {
	n, r := world.Size(), world.Rank()
	v := make([]float32, 3*n)
	if why != "" {
		v[r] = 1
	} else {
		v[n+2*r], v[n+2*r+1] = key[0], key[1]
	}
	if err := world.AllReduceSum(ctx, v); err != nil {
		return ncclAgreement{}, err
	}
	a := ncclAgreement{shareA: -1, shareB: -1}
	seen := map[[2]float32]int{}
	for i := range n {
		if v[i] != 0 {
			a.without = append(a.without, i)
			continue
		}
		k := [2]float32{v[n+2*i], v[n+2*i+1]}
		if j, dup := seen[k]; dup && a.shareA < 0 {
			a.shareA, a.shareB = j, i
		}
		seen[k] = i
	}
	return a, nil
}

// gpuKey identifies the GPU a rank computes on well enough to see two
// ranks share one: the host, the process's CUDA_VISIBLE_DEVICES and the
// device's ordinal among them (ranks with different visible sets may
// still share a GPU unseen; NCCL then refuses at its set-up). It is a
// 48-bit hash as two float32 of 24 bits each plus one (exact, never zero),
// since the exchange is a float32 all-reduce.
func gpuKey(dev string) [2]float32 {
	host, _ := os.Hostname()
	idx, err := cuda.ParseDevice(dev)
	if err != nil {
		idx = -1
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%d", host, os.Getenv("CUDA_VISIBLE_DEVICES"), idx)
	s := h.Sum64()
	return [2]float32{float32(s&0xffffff) + 1, float32(s>>24&0xffffff) + 1}
}

// launchEnv reads the launch environment (torchrun's, Slurm's, or
// `purpcode launch`'s) and refuses a world size that tp does not divide,
// before anything connects, is opened or is written.
func launchEnv(cmd string, tp int) (dist.LaunchEnv, error) {
	env, err := dist.ParseEnv(os.LookupEnv)
	if err != nil {
		return env, fmt.Errorf("%s: %w", cmd, err)
	}
	switch {
	case tp < 1:
		return env, fmt.Errorf("%s: tensor_parallel %d: want at least 1", cmd, tp)
	case env.WorldSize%tp != 0:
		how := "start a multiple of it (purpcode launch --nproc-per-node N, torchrun or srun)"
		if env.WorldSize > 1 {
			how = fmt.Sprintf("the launch has %d (WORLD_SIZE); start a multiple of %d", env.WorldSize, tp)
		}
		return env, fmt.Errorf("%s: tensor_parallel %d needs a multiple of %d ranks: %s", cmd, tp, tp, how)
	}
	return env, nil
}

// joinGroup joins the ranks env describes (more than one) and splits the
// world into tensor-parallel groups of tp neighbouring ranks (the shards of
// one model replica) and data-parallel groups across the replicas
// (dist.NewGrid, TP-innermost as train.Group numbers them). It returns the
// world, the DP group (the world when tp is 1) and the TP group (nil when
// tp is 1), all on the CPU backend. Every rank must pass the same resolved
// cfg and dist backend: they are the group's fingerprint, so ranks started
// with different configs refuse to train together. Closing the world ends
// the groups.
func joinGroup(ctx context.Context, cmd string, env dist.LaunchEnv, cfg any, backend string, tp int, stderr io.Writer) (world *dist.TCPComm, tpc, dpc dist.Comm, err error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: config fingerprint: %w", cmd, err)
	}
	o := env.Options()
	o.Fingerprint = dist.Fingerprint([]byte(cmd), raw, []byte("dist-backend "+backend))
	fmt.Fprintf(stderr, "%s: rank %d of %d (%s launch), rendezvous at %s\n", cmd, env.Rank, env.WorldSize, env.Source, o.MasterAddr)
	if tp > 1 && env.LocalWorldSize > 0 && env.WorldSize > env.LocalWorldSize && env.LocalWorldSize%tp != 0 {
		// Every layer all-reduces over the TP group: across nodes that is
		// slow, though correct.
		fmt.Fprintf(stderr, "%s: warning: tensor_parallel %d does not divide the %d ranks per node: some tensor-parallel groups span nodes\n", cmd, tp, env.LocalWorldSize)
	}
	world, err = dist.Connect(ctx, o)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: join the group of %d ranks: %w", cmd, env.WorldSize, err)
	}
	if tp == 1 {
		return world, nil, world, nil
	}
	tpc, dpc, err = dist.NewGrid(world, tp)
	if err != nil {
		world.Close()
		return nil, nil, nil, fmt.Errorf("%s: %w", cmd, err)
	}
	fmt.Fprintf(stderr, "%s: tensor-parallel rank %d of %d, data-parallel rank %d of %d\n", cmd, tpc.Rank(), tpc.Size(), dpc.Rank(), dpc.Size())
	return world, tpc, dpc, nil
}
