package crashtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Environment of the child process.
const (
	ConfigEnv   = "PURPCODE_CRASHTEST_CONFIG"     // JSON config for the child
	AfterStep   = "PURPCODE_CRASHTEST_AFTER_STEP" // block after this step is logged
	InSave      = "PURPCODE_CRASHTEST_IN_SAVE"    // "STEP:STAGE": block at a save stage
	blockedLine = "PURPCODE-CRASHTEST-BLOCKED"
)

// Config returns the child's JSON config and true inside a child process.
func Config() ([]byte, bool) {
	raw := os.Getenv(ConfigEnv)
	return []byte(raw), raw != ""
}

// block announces the kill point and waits for SIGKILL.
func block() {
	fmt.Println(blockedLine)
	os.Stdout.Sync()
	select {}
}

// Hooks returns an AfterLog and a Save hook for a trainer that block at
// the kill point the parent asked for (nil when none applies).
func Hooks() (afterLog func(step int64), save func(stage string)) {
	var k int64 = -1
	if s := os.Getenv(AfterStep); s != "" {
		k, _ = strconv.ParseInt(s, 10, 64)
	}
	var saveStep int64 = -1
	var stage string
	if s := os.Getenv(InSave); s != "" {
		parts := strings.SplitN(s, ":", 2)
		saveStep, _ = strconv.ParseInt(parts[0], 10, 64)
		if len(parts) == 2 {
			stage = parts[1]
		}
	}
	var current int64
	afterLog = func(step int64) {
		current = step
		if step == k {
			block()
		}
	}
	save = func(st string) {
		if current == saveStep && st == stage {
			block()
		}
	}
	return afterLog, save
}

// Run starts the test binary running only test name, with cfg as its
// config and the extra environment; when the child reaches its kill point
// it is killed with SIGKILL. It reports whether the child was killed, and
// fails the test when a child with a kill point finished without reaching
// it or a child without one failed.
func Run(t *testing.T, name string, cfg any, env ...string) bool {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$")
	cmd.Env = append(os.Environ(), ConfigEnv+"="+string(raw))
	cmd.Env = append(cmd.Env, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		if sc.Text() == blockedLine {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
	}
	err = cmd.Wait()
	if !killed && err != nil {
		t.Fatalf("child failed: %v\n%s", err, stderr.String())
	}
	if len(env) > 0 && !killed {
		t.Fatalf("child with %v finished without reaching its kill point", env)
	}
	return killed
}
