package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"purpcode/kernels"
)

func unavailable() *kernels.CUDAReport {
	return &kernels.CUDAReport{DriverErr: errors.New("cuda driver: libcuda.so.1: cannot open shared object file: No such file or directory")}
}

func available() *kernels.CUDAReport {
	return &kernels.CUDAReport{DriverVersion: 12040, Devices: []kernels.DeviceInfo{{Name: "Test GPU", Major: 9}}}
}

func TestChooseDevice(t *testing.T) {
	probed := 0
	probe := func(r *kernels.CUDAReport) func() *kernels.CUDAReport {
		return func() *kernels.CUDAReport { probed++; return r }
	}
	if d, n, err := chooseDevice("cpu", probe(available())); d != "cpu" || n != "" || err != nil || probed != 0 {
		t.Errorf("cpu: %q %q %v (probed %d times)", d, n, err, probed)
	}
	d, n, err := chooseDevice("auto", probe(unavailable()))
	if d != "cpu" || err != nil || n != "cuda unavailable: cuda driver: libcuda.so.1: cannot open shared object file: No such file or directory; using cpu" {
		t.Errorf("auto without cuda: %q %q %v", d, n, err)
	}
	if d, n, err := chooseDevice("auto", probe(available())); d != "cuda" || n != "" || err != nil {
		t.Errorf("auto with cuda: %q %q %v", d, n, err)
	}
	if _, _, err := chooseDevice("cuda", probe(unavailable())); err == nil || !strings.Contains(err.Error(), "libcuda.so.1") {
		t.Errorf("cuda without cuda: %v, want an error with the reason", err)
	}
	noDev := &kernels.CUDAReport{DriverVersion: 12040}
	if _, _, err := chooseDevice("cuda", probe(noDev)); err == nil || !strings.Contains(err.Error(), "no device") {
		t.Errorf("driver without devices: %v", err)
	}
	if d, _, err := chooseDevice("cuda", probe(available())); d != "cuda" || err != nil {
		t.Errorf("cuda with cuda: %q %v", d, err)
	}
	if _, _, err := chooseDevice("gpu", probe(available())); err == nil {
		t.Error("--device gpu accepted")
	}
}

func TestDeviceFlag(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := addDeviceFlag(fs)
	if f.device != "auto" {
		t.Errorf("default --device %q, want auto", f.device)
	}
	if err := fs.Parse([]string{"--device", "cpu", "--cuda-libs", "/x"}); err != nil {
		t.Fatal(err)
	}
	if f.device != "cpu" || f.libOptions().Dir != "/x" {
		t.Errorf("parsed device %q dir %q", f.device, f.libOptions().Dir)
	}
	var stderr bytes.Buffer
	if d, err := f.resolve(&stderr); d != "cpu" || err != nil || stderr.Len() != 0 {
		t.Errorf("resolve cpu: %q %v %q", d, err, stderr.String())
	}
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	fs2.SetOutput(io.Discard)
	addDeviceFlag(fs2)
	if err := fs2.Parse([]string{"--device", "gpu"}); err == nil {
		t.Error("--device gpu parsed")
	}
}

func TestCUDALibsEnv(t *testing.T) {
	t.Setenv("PURPCODE_CUDA_LIBS", "/env/libs")
	t.Setenv("VIRTUAL_ENV", "/venv")
	o := cudaLibOptions("")
	if o.Dir != "/env/libs" {
		t.Errorf("Dir %q, want $PURPCODE_CUDA_LIBS", o.Dir)
	}
	if len(o.PythonPrefixes) == 0 || o.PythonPrefixes[0] != "/venv" {
		t.Errorf("prefixes %v, want $VIRTUAL_ENV first", o.PythonPrefixes)
	}
	if cudaLibOptions("/flag").Dir != "/flag" {
		t.Error("the flag does not override $PURPCODE_CUDA_LIBS")
	}
}

// TestDeviceCommand runs `purpcode device` on this machine: it must exit 0
// and report every library, with the probe's one-line summary.
func TestDeviceCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := mainExit([]string{"device"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := out.String()
	for _, want := range []string{"driver:", "nvrtc:", "cublaslt:", "status:", "summary:  cuda: "} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	r := kernels.Probe(cudaLibOptions(""))
	if !r.Available() && !strings.Contains(s, "status:   unavailable: "+r.Reason()) {
		t.Errorf("output does not give the reason %q:\n%s", r.Reason(), s)
	}
	if code := mainExit([]string{"device", "extra"}, &out, &errb); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
}

func TestBenchCommandSmallShape(t *testing.T) {
	var out, errb bytes.Buffer
	err := runBench([]string{"--device", "cpu", "--batch", "1", "--seq", "16", "--steps", "1", "--decode-tokens", "2", "--json"}, &out, &errb)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	var res benchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("bench output %q: %v", out.String(), err)
	}
	if res.TrainTokensPS <= 0 || res.DecodeTokPS["32"] <= 0 || res.Params != 30947840 || res.FLOPsPerToken < 6*float64(res.Params-8192*512) {
		t.Fatalf("bench result %+v", res)
	}
	if err := runBench([]string{"--shape", "gpt5"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "gpt5") {
		t.Fatalf("unknown shape error: %v", err)
	}
}

// TestDeviceRankGPU: torchrun's convention for --device cuda in a launch.
func TestDeviceRankGPU(t *testing.T) {
	for _, tc := range []struct {
		dev             string
		localRank, gpus int
		want, err       string
	}{
		{"cuda", 3, 8, "cuda:3", ""},
		{"cuda", 0, 8, "cuda:0", ""},
		{"cuda", 1, 1, "cuda", ""}, // one GPU visible: CUDA_VISIBLE_DEVICES per rank
		{"cuda:5", 3, 8, "cuda:5", ""},
		{"cpu", 3, 8, "cpu", ""},
		{"cuda-emu", 1, 0, "cuda-emu", ""},
		{"cuda", 4, 4, "", "LOCAL_RANK 4, but this node's processes see 4 GPUs"},
	} {
		got, err := rankGPU(tc.dev, tc.localRank, tc.gpus)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("rankGPU(%q, %d, %d) = %q, %v; want %q, %q", tc.dev, tc.localRank, tc.gpus, got, err, tc.want, tc.err)
		}
	}
}
