package crashtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RunGroup starts n copies of the test binary running only test name as
// the ranks of one group, each with torchrun's environment (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT on a
// free loopback port), cfg as its config and env(rank) added. As soon as
// any rank announces its kill point, every rank is killed with SIGKILL at
// once — whatever each was doing — as when a node loses power. It reports
// whether the group was killed; it fails the test when a rank failed
// without any kill point reached, or when a kill point was set but never
// reached.
func RunGroup(t *testing.T, name string, cfg any, n int, env func(rank int) []string) bool {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cmds := make([]*exec.Cmd, n)
	stderrs := make([]*strings.Builder, n)
	armed := false
	// Each rank's goroutine reads its stdout until the kill point line
	// (then reports blocked) or the end (then waits for the process and
	// reports its exit), so a rank that failed before anyone was killed
	// is told apart from the ranks the kill took down.
	type exit struct {
		rank int
		err  error
	}
	blocked := make(chan int, n)
	exits := make(chan exit, n)
	for r := range n {
		extra := env(r)
		armed = armed || len(extra) > 0
		cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$")
		cmd.Env = append(os.Environ(), ConfigEnv+"="+string(raw),
			fmt.Sprintf("RANK=%d", r), fmt.Sprintf("WORLD_SIZE=%d", n),
			fmt.Sprintf("LOCAL_RANK=%d", r), fmt.Sprintf("LOCAL_WORLD_SIZE=%d", n),
			"MASTER_ADDR=127.0.0.1", fmt.Sprintf("MASTER_PORT=%d", port))
		cmd.Env = append(cmd.Env, extra...)
		stderrs[r] = &strings.Builder{}
		cmd.Stderr = stderrs[r]
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			killAll(cmds)
			t.Fatal(err)
		}
		cmds[r] = cmd
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if sc.Text() == blockedLine {
					blocked <- r
					return
				}
			}
			exits <- exit{r, cmd.Wait()}
		}()
	}
	var failed []string
	killed, waited := false, 0
	for waited < n && !killed {
		select {
		case r := <-blocked:
			t.Logf("rank %d reached its kill point: killing all %d ranks", r, n)
			killAll(cmds)
			cmds[r].Wait()
			killed, waited = true, waited+1
		case e := <-exits:
			waited++
			if e.err != nil {
				failed = append(failed, fmt.Sprintf("rank %d: %v\n%s", e.rank, e.err, stderrs[e.rank].String()))
			}
		}
	}
	if killed {
		// Reap every rank; their exit statuses are the kill's.
		for range n - waited {
			select {
			case r := <-blocked:
				cmds[r].Wait()
			case <-exits:
			}
		}
	}
	if len(failed) > 0 {
		t.Fatalf("group failed before any kill:\n%s", strings.Join(failed, "\n"))
	}
	if armed && !killed {
		t.Fatalf("group with kill points finished without reaching any")
	}
	return killed
}

func killAll(cmds []*exec.Cmd) {
	for _, c := range cmds {
		if c != nil && c.Process != nil {
			c.Process.Kill()
		}
	}
}

// freePort asks the kernel for a loopback port that is free now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("crashtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
