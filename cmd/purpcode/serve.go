package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"purpcode/serve"
)

// runServe serves a model directory over the OpenAI API until SIGINT or
// SIGTERM, then stops taking connections and lets requests in flight end.
func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	modelDir := fs.String("model", "", "Hugging Face model `dir` to serve")
	addr := fs.String("addr", "127.0.0.1:8000", "listen `address` (host:port; port 0 picks a free one)")
	name := fs.String("served-model-name", "", "model id clients send as \"model\" (default: the directory's base name)")
	batch := fs.Int("batch", 32, "most sequences decoded at once")
	kvBlocks := fs.Int("kv-blocks", 0, "KV cache capacity in 16-token blocks (0 = enough for --batch sequences)")
	maxBody := fs.Int64("max-body-bytes", 4<<20, "largest request body accepted")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "time requests in flight get to finish on shutdown")
	cpu := addCPUFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *modelDir == "" {
		fmt.Fprintln(stderr, "purpcode serve: --model is required")
		fs.Usage()
		return errUsage
	}
	if *name == "" {
		abs, err := filepath.Abs(*modelDir)
		if err != nil {
			return fmt.Errorf("--model %s: %w", *modelDir, err)
		}
		*name = filepath.Base(abs)
	}
	be, closeBE, err := cpu.backend(stderr)
	if err != nil {
		return err
	}
	defer closeBE()
	m, tok, eos, err := loadModelDir(*modelDir, be)
	if err != nil {
		return err
	}
	srv, err := serve.New(serve.Config{Model: m, Tokenizer: tok, EOS: eos, Name: *name,
		MaxBatch: *batch, KVBlocks: *kvBlocks, MaxBodyBytes: *maxBody})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		srv.Close()
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "serving %s (%s) on http://%s/v1\n", *name, *modelDir, ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), *grace)
		err = hs.Shutdown(sctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = hs.Close()
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if cerr := srv.Close(); err == nil {
		err = cerr
	}
	return err
}
