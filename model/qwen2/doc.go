// Package qwen2 is the Qwen2 / Qwen2.5 causal language model: its
// configuration from a Hugging Face config.json, the parameter table with
// HF tensor names, and an explicit forward and backward pass (llm.c style:
// activations kept per step, backward in reverse order of forward).
//
// Architecture: token embedding; per layer RMSNorm -> q/k/v projections with
// bias -> rotate-half RoPE -> causal GQA attention -> o_proj -> residual,
// RMSNorm -> SwiGLU MLP (gate, up, down) -> residual; final RMSNorm; a tied or
// untied lm head. The model never imports the kernels package: it computes
// through engine ops only.
//
// A model can be split Megatron style over tensor-parallel ranks (Shard,
// tp.go): each rank holds its heads, feature and vocabulary slices and runs
// the same forward, backward, loss and decoder with dist collectives.
package qwen2
