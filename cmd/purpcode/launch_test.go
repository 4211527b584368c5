package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestLaunch runs `purpcode launch --nproc-per-node 2 -- version` with this
// test binary as the program: its ranks run TestCLIChild, which runs the
// command line in childArgsEnv (inherited through the launcher).
func TestLaunch(t *testing.T) {
	for _, tc := range []struct {
		name, args string
		code       int
		stdout     *regexp.Regexp // must match, once per rank
		stderr     string
	}{
		{"version", `["version"]`, 0, regexp.MustCompile(`(?m)^\[rank [01]\] purpcode \S+ \(go`), ""},
		{"failing command", `["nosuch"]`, 1, nil, "purpcode launch: rank "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(childArgsEnv, tc.args)
			logDir := t.TempDir()
			var stdout, stderr bytes.Buffer
			code := mainExit([]string{"launch", "--nproc-per-node", "2", "--master-port", "0", "--log-dir", logDir, "--", "-test.run=^TestCLIChild$"}, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
			if tc.stdout != nil {
				if n := len(tc.stdout.FindAllString(stdout.String(), -1)); n != 2 {
					t.Errorf("%d version lines, want one per rank:\n%s", n, &stdout)
				}
				for _, r := range []string{"0", "1"} {
					log, err := os.ReadFile(filepath.Join(logDir, "rank-"+r+".log"))
					if err != nil || !strings.HasPrefix(string(log), "purpcode ") {
						t.Errorf("rank %s's log (%v):\n%s", r, err, log)
					}
				}
			}
			if tc.stderr != "" && !regexp.MustCompile(`purpcode launch: rank [01] failed: exit status 2\n$`).MatchString(stderr.String()) {
				t.Errorf("stderr does not end naming the failed rank and its status:\n%s", &stderr)
			}
		})
	}
}

func TestLaunchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"launch", "--", "version"}, "--nproc-per-node 0: want at least 1"},
		{[]string{"launch", "--nproc-per-node", "2"}, "no command to run"},
		{[]string{"launch", "--nproc-per-node", "2", "--master-port", "70000", "--", "version"}, "--master-port 70000"},
	} {
		var stdout, stderr bytes.Buffer
		if code := mainExit(tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, &stderr, tc.want)
		}
	}
}
