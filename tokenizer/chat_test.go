package tokenizer

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type renderRow struct {
	Messages            []Message `json:"messages"`
	AddGenerationPrompt bool      `json:"add_generation_prompt"`
	Text                string    `json:"text"`
	IDs                 []int     `json:"ids"`
}

func TestChatRenderReference(t *testing.T) {
	tk := loadQwen3(t)
	refs := refsDir(t)
	purp, err := LoadTemplate(filepath.Join(refs, "chat", "purpcode_qwen25.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file     string
		template string
	}{
		{"purpcode_qwen25_render.jsonl", purp},
		{"qwen3_render.jsonl", ""}, // the template of tokenizer_config.json
	} {
		rows := readJSONL[renderRow](t, filepath.Join(refs, "chat", tc.file))
		if len(rows) == 0 {
			t.Fatalf("%s: no rows", tc.file)
		}
		for i, r := range rows {
			opts := ChatOptions{AddGenerationPrompt: r.AddGenerationPrompt, Template: tc.template}
			text, err := tk.RenderChat(r.Messages, opts)
			if err != nil {
				t.Fatalf("%s row %d: %v", tc.file, i+1, err)
			}
			if text != r.Text {
				t.Errorf("%s row %d: render\n got %q\nwant %q", tc.file, i+1, text, r.Text)
			}
			c, err := tk.ApplyChat(r.Messages, opts)
			if err != nil {
				t.Fatalf("%s row %d: %v", tc.file, i+1, err)
			}
			if !slices.Equal(c.IDs, r.IDs) {
				t.Errorf("%s row %d: ids\n got %v\nwant %v", tc.file, i+1, c.IDs, r.IDs)
			}
		}
	}
}

// maskedText joins the decoded tokens selected by mask, one string per
// contiguous run.
func maskedText(tk *Tokenizer, ids []int, mask []bool) []string {
	var runs []string
	var cur []int
	for i, m := range mask {
		if m {
			cur = append(cur, ids[i])
			continue
		}
		if cur != nil {
			runs = append(runs, tk.Decode(cur, false))
			cur = nil
		}
	}
	if cur != nil {
		runs = append(runs, tk.Decode(cur, false))
	}
	return runs
}

func TestApplyChatMasks(t *testing.T) {
	tk := loadQwen3(t)
	purp, err := LoadTemplate(filepath.Join(refsDir(t), "chat", "purpcode_qwen25.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{
		{"system", "You are careful."},
		{"user", "a"},
		{"assistant", "first answer"},
		{"user", "b"},
		{"assistant", "\n\nsecond answer\n"},
	}
	t.Run("qwen25", func(t *testing.T) {
		c, err := tk.ApplyChat(msgs, ChatOptions{Template: purp})
		if err != nil {
			t.Fatal(err)
		}
		got := maskedText(tk, c.IDs, c.Assistant)
		// The content's leading "\n\n" merges with the header's "\n" into
		// one token, which straddles the turn start and so is inside.
		want := []string{"first answer<|im_end|>", "\n\n\nsecond answer\n<|im_end|>"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("assistant runs %q, want %q", got, want)
		}
		last := maskedText(tk, c.IDs, c.LastAssistant)
		if len(last) != 1 || last[0] != want[1] {
			t.Errorf("last assistant runs %q, want %q", last, want[1:])
		}
	})
	t.Run("qwen3", func(t *testing.T) {
		// Qwen3 renders the last turn with an empty think block but drops
		// it from earlier turns: the prefix renderings are inconsistent
		// and the trailer search must take over.
		c, err := tk.ApplyChat(msgs, ChatOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := maskedText(tk, c.IDs, c.Assistant)
		want := []string{"first answer<|im_end|>", "<think>\n\n</think>\n\nsecond answer\n<|im_end|>"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("assistant runs %q, want %q", got, want)
		}
	})
	t.Run("no assistant", func(t *testing.T) {
		c, err := tk.ApplyChat(msgs[:2], ChatOptions{AddGenerationPrompt: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range c.IDs {
			if c.Assistant[i] || c.LastAssistant[i] {
				t.Fatalf("token %d masked without assistant turns", i)
			}
		}
	})
	t.Run("inconsistent template", func(t *testing.T) {
		// A template whose output depends on the number of messages cannot
		// be cut into per-turn prefixes.
		bad := `{% for m in messages %}[{{ messages|length }}]{{ m.role }}:{{ m.content }}<|im_end|>{% endfor %}{% if add_generation_prompt %}[gen]{% endif %}`
		_, err := tk.ApplyChat(msgs[1:3], ChatOptions{Template: bad})
		if err == nil || !strings.Contains(err.Error(), "not a prefix") {
			t.Fatalf("err = %v, want a prefix inconsistency error", err)
		}
	})
}

func TestChatTemplateErrors(t *testing.T) {
	tk := loadQwen3(t)
	msgs := []Message{{"user", "hi"}}
	_, err := tk.RenderChat(msgs, ChatOptions{Template: "line one\n{% if %}\n"})
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("syntax error = %v, want it to name line 2", err)
	}
	_, err = tk.RenderChat(msgs, ChatOptions{Template: "a\nb\n{{ raise_exception('Only user and assistant roles are supported') }}\n"})
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "Only user") {
		t.Errorf("runtime error = %v, want the message and line 3", err)
	}
	_, err = tk.RenderChat(msgs, ChatOptions{Template: "a\nb\n{{ nosuch(1) }}\n"})
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("undefined call error = %v, want line 3", err)
	}
	empty := &Tokenizer{}
	if _, err := empty.RenderChat(msgs, ChatOptions{}); err == nil {
		t.Error("rendering without any template succeeded")
	}
}
