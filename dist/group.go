package dist

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
)

// NewGrid splits world into the tensor-parallel and data-parallel groups of
// a TP×DP run, numbered TP-innermost: world rank w is TP rank w%tp of TP
// group w/tp (world ranks (w/tp)*tp ... (w/tp)*tp+tp-1) and DP rank w/tp of
// DP group w%tp (world ranks w%tp, w%tp+tp, w%tp+2*tp, ...). Both groups
// send over world's connections (see Sub). tp must divide world's size;
// tp == 1 (a TP group of one rank) and tp == Size() (a DP group of one
// rank) are valid.
func NewGrid(world *TCPComm, tp int) (tpComm, dpComm Comm, err error) {
	if world == nil {
		return nil, nil, fmt.Errorf("dist: grid: no world communicator")
	}
	n := world.Size()
	if tp < 1 || n%tp != 0 {
		return nil, nil, fmt.Errorf("dist: grid: tensor-parallel size %d does not divide world size %d", tp, n)
	}
	w := world.Rank()
	tpRanks := make([]int, tp)
	for i := range tpRanks {
		tpRanks[i] = w/tp*tp + i
	}
	dpRanks := make([]int, n/tp)
	for k := range dpRanks {
		dpRanks[k] = w%tp + k*tp
	}
	// Every rank makes its TP group before its DP group, so the groups'
	// ids (see Sub) agree across ranks.
	tg, err := world.sub(tpRanks, "tp group")
	if err != nil {
		return nil, nil, err
	}
	dg, err := world.sub(dpRanks, "dp group")
	if err != nil {
		return nil, nil, err
	}
	return tg, dg, nil
}

// Sub returns the communicator of the world ranks in ranks, which must
// include this rank; group rank i is world rank ranks[i], so sums run in
// the order of ranks, and the group's Rank, Broadcast root and chunks
// (ChunkRange) are group ranks, while its errors name world ranks. Every
// member must pass the same list, and members
// that make several groups of the same list must make them in the same
// order.
//
// A group sends over c's connections, with no rendezvous of its own: it
// tags its frames with an id derived from its member list, and keeps its
// own sequence numbers. Calls on c and on its groups may be interleaved in
// any order that is the same on every rank (SPMD), but one at a time: a
// call while another is in flight is refused. Any failure in any group
// breaks c and every group made from it, so that peers blocked in other
// groups' calls learn of it too (through the notices c already sends), and
// errors name world ranks. c owns the connections: closing a group only
// makes its own later calls fail with ErrClosed, and closing c ends every
// group.
func (c *TCPComm) Sub(ranks []int) (Comm, error) {
	return c.sub(ranks, "group")
}

func (c *TCPComm) sub(ranks []int, kind string) (*group, error) {
	if len(ranks) == 0 {
		return nil, fmt.Errorf("dist: %s: no ranks", kind)
	}
	self := -1
	for i, r := range ranks {
		if r < 0 || r >= c.size {
			return nil, fmt.Errorf("dist: %s %v: rank %d is outside world size %d", kind, ranks, r, c.size)
		}
		if slices.Index(ranks, r) != i {
			return nil, fmt.Errorf("dist: %s %v: rank %d appears twice", kind, ranks, r)
		}
		if r == c.rank {
			self = i
		}
	}
	if self < 0 {
		return nil, fmt.Errorf("dist: %s %v: this rank (%d) is not a member", kind, ranks, c.rank)
	}
	members := slices.Clone(ranks)
	key := fmt.Sprint(members)
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[string]int{}
	}
	dup := c.subs[key]
	c.subs[key]++
	c.mu.Unlock()
	return &group{
		m: c, rank: self, members: members,
		id:   groupID(members, dup),
		name: fmt.Sprintf("%s %v", kind, members),
	}, nil
}

// groupID is the frame tag of the dup-th group of members. It only has to
// differ between the groups that share a connection (at most a few per
// pair of ranks) for a mismatched call to show as "out of step"; the
// results never depend on it, since every pair's frames come in program
// order. The member list is part of it, so ranks that disagree on a
// group's members fail on its first call instead of mixing groups. 0 is
// the world's.
func groupID(members []int, dup int) uint32 {
	h := fnv.New32a()
	var b [4]byte
	for _, r := range append(slices.Clone(members), -1, dup) {
		binary.LittleEndian.PutUint32(b[:], uint32(r))
		h.Write(b[:])
	}
	if id := h.Sum32(); id != 0 {
		return id
	}
	return 1
}

// Close implements Comm for a group: its later calls fail with ErrClosed.
// The connections belong to the world TCPComm and stay open.
func (g *group) Close() error {
	g.closed = true
	return nil
}
