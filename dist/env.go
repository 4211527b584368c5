package dist

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// LaunchEnv is where this process sits in a job, as its launcher described
// it in the environment.
type LaunchEnv struct {
	Rank, WorldSize           int
	LocalRank, LocalWorldSize int // on this node
	MasterHost                string
	MasterPort                int
	// Source is "torchrun" (also `purpcode launch`), "slurm", or "" for a
	// single process started by hand.
	Source string
}

// MasterAddr is rank 0's rendezvous address, host:port.
func (e LaunchEnv) MasterAddr() string {
	return net.JoinHostPort(e.MasterHost, strconv.Itoa(e.MasterPort))
}

// Options returns the Connect options of e (the rest left at defaults).
func (e LaunchEnv) Options() Options {
	return Options{Rank: e.Rank, WorldSize: e.WorldSize, MasterAddr: e.MasterAddr()}
}

// DefaultMasterPort is torchrun's default port, used by `purpcode launch`.
const DefaultMasterPort = 29500

// Environment variables read by ParseEnv: torchrun's, and Slurm's for
// tasks started by srun.
const (
	envRank           = "RANK"
	envWorldSize      = "WORLD_SIZE"
	envLocalRank      = "LOCAL_RANK"
	envLocalWorldSize = "LOCAL_WORLD_SIZE"
	envMasterAddr     = "MASTER_ADDR"
	envMasterPort     = "MASTER_PORT"
)

// ParseEnv reads the launch environment through lookup (os.LookupEnv in
// the command; a map in tests). torchrun's variables win over Slurm's, so
// torchrun started by srun works. With neither it returns a single rank.
// MASTER_ADDR and MASTER_PORT, when set, override what Slurm implies: the
// first host of the step's (else the job's) node list, and a port derived
// from SLURM_JOB_ID so that two jobs sharing a node do not collide.
func ParseEnv(lookup func(string) (string, bool)) (LaunchEnv, error) {
	e := LaunchEnv{WorldSize: 1, LocalWorldSize: 1}
	p := envParser{lookup: lookup}
	_, hasRank := lookup(envRank)
	_, hasWorld := lookup(envWorldSize)
	_, hasSlurm := lookup("SLURM_PROCID")
	switch {
	case hasRank || hasWorld:
		e.Source = "torchrun"
		e.Rank = p.int(envRank, true)
		e.WorldSize = p.int(envWorldSize, true)
		_, hasLR := lookup(envLocalRank)
		_, hasLWS := lookup(envLocalWorldSize)
		if hasLR || hasLWS {
			e.LocalRank = p.int(envLocalRank, true)
			e.LocalWorldSize = p.int(envLocalWorldSize, true)
		} else {
			// Started by hand on one node: every rank is local.
			e.LocalRank, e.LocalWorldSize = e.Rank, e.WorldSize
		}
	case hasSlurm:
		e.Source = "slurm"
		e.Rank = p.int("SLURM_PROCID", true)
		if _, ok := lookup("SLURM_NTASKS"); ok {
			e.WorldSize = p.int("SLURM_NTASKS", true)
		} else {
			e.WorldSize = p.int("SLURM_NPROCS", true)
		}
		e.LocalRank = p.int("SLURM_LOCALID", true)
		e.LocalWorldSize = p.slurmLocalWorldSize()
	default:
		return e, nil
	}
	if p.err != nil {
		return LaunchEnv{}, p.err
	}
	if err := e.check(); err != nil {
		return LaunchEnv{}, err
	}
	if e.WorldSize == 1 {
		if _, ok := lookup(envMasterAddr); !ok {
			return e, nil // nothing to meet
		}
	}
	e.MasterHost, e.MasterPort = p.master(e.Source)
	if p.err != nil {
		return LaunchEnv{}, p.err
	}
	return e, nil
}

// check reports values that cannot describe one job.
func (e LaunchEnv) check() error {
	names := map[string][4]string{
		"torchrun": {envRank, envWorldSize, envLocalRank, envLocalWorldSize},
		"slurm":    {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "tasks on this node"},
	}[e.Source]
	switch {
	case e.WorldSize < 1:
		return fmt.Errorf("dist: %s=%d: want at least 1", names[1], e.WorldSize)
	case e.Rank >= e.WorldSize:
		return fmt.Errorf("dist: %s=%d is not below %s=%d", names[0], e.Rank, names[1], e.WorldSize)
	case e.LocalWorldSize < 1 || e.LocalWorldSize > e.WorldSize:
		return fmt.Errorf("dist: %s=%d: want 1..%s=%d", names[3], e.LocalWorldSize, names[1], e.WorldSize)
	case e.LocalRank >= e.LocalWorldSize:
		return fmt.Errorf("dist: %s=%d is not below %s=%d", names[2], e.LocalRank, names[3], e.LocalWorldSize)
	case e.LocalRank > e.Rank:
		return fmt.Errorf("dist: %s=%d exceeds %s=%d: a rank's index on its node cannot exceed its index in the job", names[2], e.LocalRank, names[0], e.Rank)
	}
	return nil
}

// envParser reads integers from the environment, keeping the first error.
type envParser struct {
	lookup func(string) (string, bool)
	err    error
}

func (p *envParser) setErr(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("dist: "+format, args...)
	}
}

func (p *envParser) int(name string, required bool) int {
	s, ok := p.lookup(name)
	if !ok || strings.TrimSpace(s) == "" {
		if required {
			p.setErr("%s is not set (the launcher sets it with the others)", name)
		}
		return 0
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 0 {
		p.setErr("%s=%q: want a non-negative integer", name, s)
		return 0
	}
	return v
}

// slurmLocalWorldSize is the number of tasks on this node:
// SLURM_NTASKS_PER_NODE when given, else this node's entry of
// SLURM_TASKS_PER_NODE ("2(x3),1": three nodes with 2, then one with 1).
func (p *envParser) slurmLocalWorldSize() int {
	if _, ok := p.lookup("SLURM_NTASKS_PER_NODE"); ok {
		return p.int("SLURM_NTASKS_PER_NODE", true)
	}
	tpn, ok := p.lookup("SLURM_TASKS_PER_NODE")
	if !ok {
		p.setErr("SLURM_TASKS_PER_NODE is not set (srun sets it with SLURM_PROCID)")
		return 0
	}
	node := p.int("SLURM_NODEID", true)
	if p.err != nil {
		return 0
	}
	for part := range strings.SplitSeq(tpn, ",") {
		count, reps := part, "1"
		if i := strings.Index(part, "(x"); i >= 0 && strings.HasSuffix(part, ")") {
			count, reps = part[:i], part[i+2:len(part)-1]
		}
		c, err1 := strconv.Atoi(count)
		r, err2 := strconv.Atoi(reps)
		if err1 != nil || err2 != nil || c < 1 || r < 1 {
			p.setErr("SLURM_TASKS_PER_NODE=%q: want entries like 2 or 2(x3)", tpn)
			return 0
		}
		if node < r {
			return c
		}
		node -= r
	}
	p.setErr("SLURM_NODEID is beyond the nodes of SLURM_TASKS_PER_NODE=%q", tpn)
	return 0
}

// master returns rank 0's host and port.
func (p *envParser) master(source string) (string, int) {
	host, hasHost := p.lookup(envMasterAddr)
	host = strings.TrimSpace(host)
	if !hasHost && source == "slurm" {
		list, ok := p.lookup("SLURM_STEP_NODELIST")
		name := "SLURM_STEP_NODELIST"
		if !ok {
			list, ok = p.lookup("SLURM_JOB_NODELIST")
			name = "SLURM_JOB_NODELIST"
		}
		if !ok {
			p.setErr("neither MASTER_ADDR nor SLURM_JOB_NODELIST is set: cannot find rank 0's host")
			return "", 0
		}
		first, err := FirstHost(list)
		if err != nil {
			p.setErr("%s: %w", name, err)
			return "", 0
		}
		host, hasHost = first, true
	}
	if !hasHost || host == "" {
		p.setErr("MASTER_ADDR is not set: rank 0's host is needed to meet the other ranks")
		return "", 0
	}
	if _, ok := p.lookup(envMasterPort); !ok && source == "slurm" {
		if _, ok := p.lookup("SLURM_JOB_ID"); ok {
			return host, 20000 + p.int("SLURM_JOB_ID", true)%20000
		}
	}
	port := p.int(envMasterPort, true)
	if p.err == nil && (port < 1 || port > 65535) {
		p.setErr("MASTER_PORT=%d: want 1..65535", port)
	}
	return host, port
}
