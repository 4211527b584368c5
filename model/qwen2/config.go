package qwen2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// Config is the subset of a Hugging Face Qwen2Config the model needs. Raw
// keeps every field of the file so a saved checkpoint round-trips fields we
// do not interpret.
type Config struct {
	ModelType        string
	Hidden           int     // hidden_size (C)
	Intermediate     int     // intermediate_size
	Layers           int     // num_hidden_layers
	Heads            int     // num_attention_heads (Hq)
	KVHeads          int     // num_key_value_heads (Hk)
	HeadDim          int     // head_dim, default hidden/heads
	Vocab            int     // vocab_size
	RopeTheta        float64 // rope_theta
	RMSNormEps       float64 // rms_norm_eps
	TieEmbeddings    bool    // tie_word_embeddings
	MaxPositions     int     // max_position_embeddings
	AttentionBias    bool    // q/k/v bias (always true for qwen2)
	BOS              int     // bos_token_id, -1 if absent
	EOS              []int   // eos_token_id (int or list)
	TorchDType       string  // torch_dtype, "" if absent
	InitializerRange float64 // initializer_range, default 0.02
	Raw              map[string]any
	source           string
}

// ParseConfig decodes and validates config.json content. name is used in
// error messages (usually the file path).
func ParseConfig(data []byte, name string) (*Config, error) {
	raw := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", name, err)
	}
	c := &Config{Raw: raw, source: name, BOS: -1, InitializerRange: 0.02}
	f := fields{raw: raw, name: name}
	c.ModelType = f.str("model_type", "")
	switch c.ModelType {
	case "qwen2":
		c.AttentionBias = f.boolean("attention_bias", true)
	case "llama":
		c.AttentionBias = f.boolean("attention_bias", false)
	case "":
		f.fail("model_type", "missing; want \"qwen2\"")
	default:
		f.fail("model_type", fmt.Sprintf("%q is not supported (want qwen2 or llama)", c.ModelType))
	}
	c.Hidden = f.positive("hidden_size")
	c.Intermediate = f.positive("intermediate_size")
	c.Layers = f.positive("num_hidden_layers")
	c.Heads = f.positive("num_attention_heads")
	c.KVHeads = f.intDefault("num_key_value_heads", c.Heads)
	c.Vocab = f.positive("vocab_size")
	c.MaxPositions = f.positive("max_position_embeddings")
	c.RopeTheta = f.float("rope_theta", 10000)
	c.RMSNormEps = f.float("rms_norm_eps", 1e-6)
	c.TieEmbeddings = f.boolean("tie_word_embeddings", false)
	c.InitializerRange = f.float("initializer_range", 0.02)
	c.TorchDType = f.str("torch_dtype", "")
	if act := f.str("hidden_act", "silu"); act != "silu" {
		f.fail("hidden_act", fmt.Sprintf("%q is not supported (want silu)", act))
	}
	if f.boolean("use_sliding_window", false) {
		f.fail("use_sliding_window", "true is not supported (sliding-window attention is not implemented)")
	}
	if rs, ok := raw["rope_scaling"]; ok && rs != nil {
		f.fail("rope_scaling", "is set; RoPE scaling is not supported")
	}
	if c.Heads > 0 && c.Hidden > 0 {
		c.HeadDim = f.intDefault("head_dim", c.Hidden/c.Heads)
		if _, ok := raw["head_dim"]; !ok && c.Hidden%c.Heads != 0 {
			f.fail("num_attention_heads", fmt.Sprintf("%d does not divide hidden_size %d", c.Heads, c.Hidden))
		}
	}
	if c.HeadDim%2 != 0 {
		f.fail("head_dim", fmt.Sprintf("%d is odd; rotary embeddings need an even head dim", c.HeadDim))
	}
	if c.KVHeads <= 0 || (c.Heads > 0 && c.Heads%c.KVHeads != 0) {
		f.fail("num_key_value_heads", fmt.Sprintf("%d must be positive and divide num_attention_heads %d", c.KVHeads, c.Heads))
	}
	if c.RopeTheta <= 0 || math.IsInf(c.RopeTheta, 0) {
		f.fail("rope_theta", fmt.Sprintf("%v must be positive", c.RopeTheta))
	}
	if c.RMSNormEps <= 0 {
		f.fail("rms_norm_eps", fmt.Sprintf("%v must be positive", c.RMSNormEps))
	}
	switch c.TorchDType {
	case "", "float32", "bfloat16", "float16":
	default:
		f.fail("torch_dtype", fmt.Sprintf("%q is not supported (want float32, bfloat16 or float16)", c.TorchDType))
	}
	if v, ok := raw["bos_token_id"]; ok && v != nil {
		c.BOS = f.intDefault("bos_token_id", -1)
	}
	c.EOS = f.intList("eos_token_id")
	if f.err != nil {
		return nil, f.err
	}
	return c, nil
}

// LoadConfig reads dir/config.json (or a config file path).
func LoadConfig(path string) (*Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return ParseConfig(data, path)
}

// JSON renders the configuration as config.json, keeping unknown fields.
func (c *Config) JSON() ([]byte, error) {
	raw := map[string]any{}
	for k, v := range c.Raw {
		raw[k] = v
	}
	raw["model_type"] = c.ModelType
	raw["hidden_size"] = c.Hidden
	raw["intermediate_size"] = c.Intermediate
	raw["num_hidden_layers"] = c.Layers
	raw["num_attention_heads"] = c.Heads
	raw["num_key_value_heads"] = c.KVHeads
	raw["vocab_size"] = c.Vocab
	raw["rope_theta"] = c.RopeTheta
	raw["rms_norm_eps"] = c.RMSNormEps
	raw["tie_word_embeddings"] = c.TieEmbeddings
	raw["max_position_embeddings"] = c.MaxPositions
	raw["hidden_act"] = "silu"
	if c.HeadDim != c.Hidden/c.Heads {
		raw["head_dim"] = c.HeadDim
	}
	if c.TorchDType != "" {
		raw["torch_dtype"] = c.TorchDType
	}
	if _, ok := raw["architectures"]; !ok {
		if c.ModelType == "llama" {
			raw["architectures"] = []string{"LlamaForCausalLM"}
		} else {
			raw["architectures"] = []string{"Qwen2ForCausalLM"}
		}
	}
	if c.BOS >= 0 {
		raw["bos_token_id"] = c.BOS
	}
	switch len(c.EOS) {
	case 0:
	case 1:
		raw["eos_token_id"] = c.EOS[0]
	default:
		raw["eos_token_id"] = c.EOS
	}
	return json.MarshalIndent(raw, "", "  ")
}

// fields reads typed values from a decoded JSON object, remembering the
// first problem so every getter can be called unconditionally.
type fields struct {
	raw  map[string]any
	name string
	err  error
}

func (f *fields) fail(key, msg string) {
	if f.err == nil {
		f.err = fmt.Errorf("%s: field %q: %s", f.name, key, msg)
	}
}

func (f *fields) number(key string) (json.Number, bool) {
	v, ok := f.raw[key]
	if !ok || v == nil {
		return "", false
	}
	n, isNum := v.(json.Number)
	if !isNum {
		f.fail(key, fmt.Sprintf("want a number, got %v (%T)", v, v))
		return "", false
	}
	return n, true
}

func (f *fields) intDefault(key string, def int) int {
	n, ok := f.number(key)
	if !ok {
		return def
	}
	i, err := n.Int64()
	if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
		f.fail(key, fmt.Sprintf("want an integer, got %s", n))
		return def
	}
	return int(i)
}

func (f *fields) positive(key string) int {
	if _, ok := f.raw[key]; !ok {
		f.fail(key, "missing; want a positive integer")
		return 0
	}
	v := f.intDefault(key, 0)
	if v <= 0 && f.err == nil {
		f.fail(key, fmt.Sprintf("%d must be a positive integer", v))
	}
	return v
}

func (f *fields) float(key string, def float64) float64 {
	n, ok := f.number(key)
	if !ok {
		return def
	}
	v, err := n.Float64()
	if err != nil {
		f.fail(key, fmt.Sprintf("want a number, got %s", n))
		return def
	}
	return v
}

func (f *fields) boolean(key string, def bool) bool {
	v, ok := f.raw[key]
	if !ok || v == nil {
		return def
	}
	b, isBool := v.(bool)
	if !isBool {
		f.fail(key, fmt.Sprintf("want true or false, got %v", v))
		return def
	}
	return b
}

func (f *fields) str(key, def string) string {
	v, ok := f.raw[key]
	if !ok || v == nil {
		return def
	}
	s, isStr := v.(string)
	if !isStr {
		f.fail(key, fmt.Sprintf("want a string, got %v", v))
		return def
	}
	return s
}

func (f *fields) intList(key string) []int {
	v, ok := f.raw[key]
	if !ok || v == nil {
		return nil
	}
	if _, isNum := v.(json.Number); isNum {
		return []int{f.intDefault(key, 0)}
	}
	list, isList := v.([]any)
	if !isList {
		f.fail(key, fmt.Sprintf("want an integer or a list of integers, got %v", v))
		return nil
	}
	out := make([]int, 0, len(list))
	for _, e := range list {
		n, isNum := e.(json.Number)
		i, err := n.Int64()
		if !isNum || err != nil {
			f.fail(key, fmt.Sprintf("list element %v is not an integer", e))
			return nil
		}
		out = append(out, int(i))
	}
	return out
}
