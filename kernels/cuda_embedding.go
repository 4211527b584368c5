package kernels

import "sort"

// EmbeddingBwdPlan groups a batch's token ids for embedding_bwd: uniq are
// the distinct ids in [0, vocab) in increasing order, and rows[offsets[u]
// .. offsets[u+1]) the batch rows holding uniq[u], in increasing order.
// Ids outside [0, vocab) are left out (embedding_fwd reports them).
//
// This is what makes the backward deterministic without fp32 atomics: one
// block owns each touched table row and sums its rows in batch order. The
// cost is a stable sort of the ids on the host, O(N log N) for N tokens
// (well under a millisecond for a 64k-token batch, and the ids are on the
// host anyway), plus 4*(N + 2U + 1) bytes to upload; the kernel reads each
// gradient row once, as the atomic version did. Its parallelism is one
// block per distinct id, so a batch of a single repeated token serialises
// into one block (a pathological batch, still correct).
func EmbeddingBwdPlan(ids []int32, vocab int) (uniq, offsets, rows []int32) {
	rows = make([]int32, 0, len(ids))
	for r, id := range ids {
		if id >= 0 && int(id) < vocab {
			rows = append(rows, int32(r))
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return ids[rows[i]] < ids[rows[j]] })
	offsets = []int32{0}
	for i, r := range rows {
		if i == 0 || ids[r] != ids[rows[i-1]] {
			if i > 0 {
				offsets = append(offsets, int32(i))
			}
			uniq = append(uniq, ids[r])
		}
	}
	if len(rows) > 0 {
		offsets = append(offsets, int32(len(rows)))
	}
	return uniq, offsets, rows
}
