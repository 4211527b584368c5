package main

import "testing"

func TestParsePeakTFLOPS(t *testing.T) {
	for _, c := range []struct {
		flag, describe string
		want           float64
		bad            bool
	}{
		{"auto", "cuda:0 (NVIDIA H100 80GB HBM3)", 989, false},
		{"auto", "cuda:0 (NVIDIA H200)", 989, false},
		{"auto", "cuda:0 (NVIDIA H100 PCIe)", 756, false},
		{"auto", "cuda:0 (NVIDIA A100-SXM4-80GB)", 0, false},
		{"auto", "cpu (OpenBLAS, 2 threads)", 0, false},
		{"312", "cuda:0 (NVIDIA A100-SXM4-80GB)", 312, false},
		{"0", "cuda:0 (NVIDIA H100 80GB HBM3)", 0, false},
		{"-1", "", 0, true},
		{"NaN", "", 0, true},
		{"Inf", "", 0, true},
		{"fast", "", 0, true},
	} {
		got, err := parsePeakTFLOPS(c.flag, c.describe)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("parsePeakTFLOPS(%q, %q) = %g, %v; want %g (error %v)", c.flag, c.describe, got, err, c.want, c.bad)
		}
	}
}
