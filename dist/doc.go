// Package dist is the communication layer of multi-rank training: the
// Comm collectives interface, its CPU backend over TCP, the rendezvous
// through rank 0, the launch environment (torchrun, Slurm) and the local
// launcher behind `purpcode launch`.
//
// # Reproducible reductions
//
// Every sum is taken in rank order, whatever order messages arrive in. The
// CPU backend reduces to owners and then gathers: a buffer of n elements is
// split into Size() contiguous chunks (ChunkRange; the first n%Size() chunks
// are one element longer), chunk r belongs to rank r, every rank sends chunk
// r of its buffer to rank r, and rank r waits for all of them before
// computing x_0 + x_1 + ... + x_{p-1} element by element in fp32. The owner
// then sends its reduced chunk to every other rank (all-gather). Each rank
// sends and receives 2(p-1)/p of the buffer, like a ring all-reduce, but over
// a full mesh of p(p-1)/2 connections, and the order of the additions is
// fixed by construction, so two runs with the same inputs give the same bits
// on every rank. bf16 buffers travel as bf16, are summed in fp32 in the same
// order and rounded to bf16 once (round to nearest even).
//
// # Failures
//
// Every call has a deadline (the context's, else Options.Timeout). A peer
// that dies closes its sockets, so the survivors' reads fail at once with a
// *PeerError naming the lost rank; a peer that hangs is named when the
// deadline passes. After any error the Comm is broken: the streams may be
// out of step, so it closes its connections and every later call returns
// the first error. Closing them is what makes one failure end every rank's
// call at once rather than at each deadline, but it would also make rank c,
// which sees rank a die and then rank b close because of a, blame b. So
// each pair of ranks has a second, control connection: before closing, a
// broken rank writes there which rank it lost, and a rank that sees a peer
// close waits (briefly) for that peer's control connection to end before
// choosing whom to name. Every survivor names the rank that failed first.
//
// # Launch
//
// ParseEnv reads torchrun's variables or Slurm's through a lookup function
// (only the command reads the process environment). Launch starts local
// ranks with torchrun's variables, prefixes and logs their output, forwards
// SIGINT/SIGTERM, and stops every rank when one fails. Rank 0 listens on
// MASTER_ADDR:MASTER_PORT; the others send it their rank, world size and
// configuration fingerprint, and it refuses the group, telling every rank
// why, when they disagree or a rank is missing or duplicated.
//
// # GPU backends
//
// The interface takes host slices. An NCCL backend implements it by staging
// through device memory, and for device-resident tensors it adds the same
// methods over device pointers (a DeviceComm with the kernels package's
// pointer type and a stream), keeping the chunk layout of ChunkRange: NCCL's
// reduce-scatter and all-gather need equal counts, so the backend pads the
// buffer to Size()*ceil(n/Size()) elements and the owners' chunks are the
// first ChunkLen elements of each padded slot. The NCCL unique id (128
// bytes) is sent from rank 0 with the CPU Comm's Broadcast, so both backends
// share one rendezvous and one launch path. NCCL's own reductions are not
// in a fixed order across ring/tree choices; pin NCCL_ALGO=Ring and
// NCCL_PROTO=Simple for runs that must be bitwise reproducible.
package dist
