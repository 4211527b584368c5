package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"purpcode/tokenizer"
)

func runTokenize(args []string, stdout, stderr io.Writer) error {
	return tokenizeMain(args, os.Stdin, stdout, stderr)
}

// tokenizeRow is one JSONL input row: text or messages to encode, or ids
// to decode.
type tokenizeRow struct {
	Text     *string             `json:"text"`
	Messages []tokenizer.Message `json:"messages"`
	IDs      []int               `json:"ids"`
}

func tokenizeMain(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("tokenize", stderr)
	dir := fs.String("tokenizer", "", "directory with tokenizer.json (and tokenizer_config.json); required")
	data := fs.String("data", "", "input JSONL file (default: standard input)")
	lines := fs.Bool("lines", false, "read plain text lines instead of JSONL; each line is encoded without its newline")
	decode := fs.Bool("decode", false, `decode rows {"ids":[...]} to {"text":...}`)
	skipSpecial := fs.Bool("skip-special", false, "with --decode, leave special tokens out of the text")
	tmplPath := fs.String("chat-template", "", "Jinja chat template file for messages rows (default: the tokenizer_config.json one)")
	genPrompt := fs.Bool("add-generation-prompt", false, "end rendered chats with the assistant header")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 || (*lines && *decode) {
		switch {
		case *dir == "":
			fmt.Fprintln(stderr, "purpcode tokenize: --tokenizer is required")
		case fs.NArg() > 0:
			fmt.Fprintf(stderr, "purpcode tokenize: unexpected arguments %q\n", fs.Args())
		default:
			fmt.Fprintln(stderr, "purpcode tokenize: --lines and --decode cannot be combined (decode reads {\"ids\":[...]} rows)")
		}
		return errUsage
	}
	tok, err := tokenizer.Load(*dir)
	if err != nil {
		return err
	}
	opts := tokenizer.ChatOptions{AddGenerationPrompt: *genPrompt}
	if *tmplPath != "" {
		if opts.Template, err = tokenizer.LoadTemplate(*tmplPath); err != nil {
			return err
		}
	}
	in, name := stdin, "stdin"
	if *data != "" && *data != "-" {
		f, err := os.Open(*data)
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, *data
	}
	r := bufio.NewReaderSize(in, 1<<20)
	w := bufio.NewWriterSize(stdout, 1<<20)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // keep "<|im_end|>" readable
	var out []byte
	for lineNo := 1; ; lineNo++ {
		line, rerr := r.ReadBytes('\n')
		if len(line) == 0 && rerr != nil {
			if rerr == io.EOF {
				break
			}
			return fmt.Errorf("%s:%d: %w", name, lineNo, rerr)
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if *lines {
			out = appendIDs(out[:0], tok.Encode(string(line)))
			if _, err := w.Write(out); err != nil {
				return err
			}
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := tokenizeJSONRow(line, tok, opts, *decode, *skipSpecial, w, enc, &out); err != nil {
			return fmt.Errorf("%s:%d: %w", name, lineNo, err)
		}
	}
	return w.Flush()
}

func tokenizeJSONRow(line []byte, tok *tokenizer.Tokenizer, opts tokenizer.ChatOptions, decode, skipSpecial bool, w io.Writer, enc *json.Encoder, out *[]byte) error {
	var row tokenizeRow
	if err := json.Unmarshal(line, &row); err != nil {
		return fmt.Errorf("parse row: %w", err)
	}
	if decode {
		if row.IDs == nil {
			return errors.New(`decode: row has no "ids"`)
		}
		return enc.Encode(struct {
			Text string `json:"text"`
		}{tok.Decode(row.IDs, skipSpecial)})
	}
	var ids []int
	switch {
	case row.Text != nil && row.Messages != nil:
		return errors.New(`row has both "text" and "messages"`)
	case row.Text != nil:
		ids = tok.Encode(*row.Text)
	case row.Messages != nil:
		c, err := tok.ApplyChat(row.Messages, opts)
		if err != nil {
			return err
		}
		ids = c.IDs
	default:
		return errors.New(`row has neither "text" nor "messages"`)
	}
	*out = appendIDs((*out)[:0], ids)
	_, err := w.Write(*out)
	return err
}

// appendIDs writes {"ids":[...]} and a newline without reflection: rows
// can hold hundreds of thousands of ids.
func appendIDs(b []byte, ids []int) []byte {
	b = append(b, `{"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	return append(b, "]}\n"...)
}
