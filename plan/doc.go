// Package plan is the memory plan and the tensor-parallel layout of a Qwen2
// model on N GPUs: which slice of every parameter each tensor-parallel rank
// holds (the Megatron split), how many bytes each GPU and host needs per
// category, how many KV-cache tokens are left for rollouts, and which byte
// ranges of the Hugging Face safetensors a rank reads to load its slices.
// It is pure arithmetic on a model config (no device, no allocation of
// tensors); `purpcode plan` prints it and the trainers size their arenas
// from the same numbers.
//
// Split (Megatron-style, inside a node): q/k/v weights and biases and the
// gate/up projections are column-parallel (rows of the HF [out, in] weight,
// dimension 0); o_proj and down_proj are row-parallel (columns, dimension
// 1), so one all-reduce follows each of them; the embedding and the lm head
// are vocab-parallel (dimension 0); norm weights are replicated. Whole
// attention heads go to a rank: TP must divide num_attention_heads. KV heads
// are split when TP divides them; when they divide TP instead, each rank
// holds the one KV head its query heads read (each KV head replicated on
// TP/KVHeads ranks, as vLLM and Megatron do); otherwise every rank holds all
// of them. Other split dimensions may be uneven: the first n%TP ranks get
// one more row.
//
// Memory: data parallelism (DP = GPUs/TP) is ZeRO-1, so fp32 master
// weights and AdamW's two moments are sharded over the DP ranks of a TP
// rank, on the GPU or (OptimizerOffload) in host memory; bf16 weights,
// gradients and the frozen bf16 reference policy are whole per TP slice.
// Activations follow model/qwen2's saved tensors per layer (bf16 values,
// fp32 norm and softmax statistics), with or without per-layer recompute.
// Whatever a GPU has left after every arena and a runtime reserve is the
// rollout KV cache. A plan that does not fit is an error saying by how much.
//
// ForRun plans one rank of an actual run (its TP rank, micro-batch shape,
// recompute, optimizer, the backend's dtypes, ZeRO-1 or not) and Compare
// checks it against a backend that accounts its allocations
// (engine.MemoryReporter): weights with master, gradients, optimizer state
// and the activation arena are allocated once by shape and must match to
// the byte; the lm head's logits chunk with the backend's scratch within a
// factor of 2 (LogitsScratchFactor says why). The trainers log RunLine at
// start and CheckLine after their first step.
package plan
