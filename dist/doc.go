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
// # Groups
//
// A TP×DP run needs tensor-parallel collectives among the ranks of a node
// and data-parallel ones across nodes. NewGrid splits the world TCPComm
// into both, numbered TP-innermost (world rank = dp*TP + tp, as
// train.Group assumes): TP group w/TP holds world ranks
// (w/TP)*TP ... (w/TP)*TP+TP-1, DP group w%TP holds w%TP, w%TP+TP, ...;
// TCPComm.Sub makes any other group. Inside a group, ranks (Rank,
// Broadcast's root, ChunkRange's chunks, the order of the sums) are group
// ranks; errors name world ranks, so "rank 3 lost" means the same process
// whichever group saw it.
//
// Groups send over the world's mesh instead of building their own: a
// second rendezvous would need more ports and a second failure domain,
// and the world's control connections are what lets a failure reach the
// ranks that do not share a group with the lost rank. Every frame carries
// its group's id (0 for the world, so world frames are unchanged) and the
// group's sequence number. The frames between two ranks come in program
// order, because SPMD code issues the calls of the groups the two share in
// the same order on both; the id only turns a call-order bug into an "out
// of step" error. The world and its groups share the connections, so they
// take one call at a time between them: a concurrent call is refused.
//
// A failure in any group breaks the world and every group: the rank that
// sees it tells all world ranks on the control connections and closes its
// connections. A rank blocked in a group without the lost rank is waiting
// for some rank that is itself blocked on (or is) the lost one; that rank
// fails, and the notice makes the waiting rank name the lost rank too. The
// world TCPComm owns the connections: its Close ends every group, while a
// group's Close only ends that group's own calls. (A rank that hangs
// rather than dies is named by the ranks waiting for it when their
// deadlines pass; a rank waiting through another, live rank usually hears
// that rank's notice first, but may name it instead if its own deadline
// comes sooner.)
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
// NCCLComm implements Comm by staging through a kernels.NCCLRank's pinned
// and device buffers on one stream, waiting for each call. Collectives on
// device-resident tensors are the rank's *Device methods, called by the
// backends only, since only they may name device memory. Buffers are
// padded to PaddedLen(n, Size()) so each owner's chunk starts its slot
// (PadChunks/UnpadChunks): NCCL's reduce-scatter and all-gather need equal
// counts. The unique id (128 bytes) is sent with the CPU Comm's Broadcast
// (NewNCCL; OpenNCCL also agrees on whether every rank could load NCCL), so
// both backends share one rendezvous and one launch path. NCCL names no
// lost peer: failures name the collective, and a deadline or an async
// error aborts the communicator. The rank's CUDA context must be the
// device's primary context, which NCCL's runtime binds. NCCL's own
// reductions are not in a fixed order across ring/tree choices; pin
// NCCL_ALGO=Ring and NCCL_PROTO=Simple for runs that must be bitwise
// reproducible.
package dist
