package dist

import (
	"strings"
	"testing"
)

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestParseEnv(t *testing.T) {
	torchrun := map[string]string{"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4", "MASTER_ADDR": "node03", "MASTER_PORT": "29500"}
	slurm := map[string]string{"SLURM_PROCID": "6", "SLURM_NTASKS": "8", "SLURM_LOCALID": "2", "SLURM_NODEID": "1",
		"SLURM_TASKS_PER_NODE": "4(x2)", "SLURM_JOB_NODELIST": "node[03-05,07]", "SLURM_JOB_ID": "123456"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "<unset>" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want LaunchEnv
		err  string // substring of the error; "" for success
	}{
		{name: "none", env: nil, want: LaunchEnv{WorldSize: 1, LocalWorldSize: 1}},
		{name: "torchrun", env: torchrun, want: LaunchEnv{5, 8, 1, 4, "node03", 29500, "torchrun"}},
		{name: "torchrun without local vars", env: with(torchrun, "LOCAL_RANK", "<unset>", "LOCAL_WORLD_SIZE", "<unset>"),
			want: LaunchEnv{5, 8, 5, 8, "node03", 29500, "torchrun"}},
		{name: "torchrun wins over slurm", env: with(slurm, "RANK", "0", "WORLD_SIZE", "2", "MASTER_ADDR", "10.0.0.1", "MASTER_PORT", "1234"),
			want: LaunchEnv{0, 2, 0, 2, "10.0.0.1", 1234, "torchrun"}},
		{name: "single rank needs no master", env: map[string]string{"RANK": "0", "WORLD_SIZE": "1"}, want: LaunchEnv{0, 1, 0, 1, "", 0, "torchrun"}},
		{name: "slurm", env: slurm, want: LaunchEnv{6, 8, 2, 4, "node03", 20000 + 123456%20000, "slurm"}},
		{name: "slurm step nodelist first", env: with(slurm, "SLURM_STEP_NODELIST", "gpu[7-8]"), want: LaunchEnv{6, 8, 2, 4, "gpu7", 23456, "slurm"}},
		{name: "slurm with master vars", env: with(slurm, "MASTER_ADDR", "head", "MASTER_PORT", "4000"), want: LaunchEnv{6, 8, 2, 4, "head", 4000, "slurm"}},
		{name: "slurm ntasks per node", env: with(slurm, "SLURM_NTASKS_PER_NODE", "4", "SLURM_TASKS_PER_NODE", "<unset>"), want: LaunchEnv{6, 8, 2, 4, "node03", 23456, "slurm"}},
		{name: "slurm uneven nodes", env: with(slurm, "SLURM_PROCID", "6", "SLURM_NTASKS", "7", "SLURM_LOCALID", "0", "SLURM_NODEID", "2", "SLURM_TASKS_PER_NODE", "3(x2),1"),
			want: LaunchEnv{6, 7, 0, 1, "node03", 23456, "slurm"}},
		{name: "slurm nprocs", env: with(slurm, "SLURM_NTASKS", "<unset>", "SLURM_NPROCS", "8"), want: LaunchEnv{6, 8, 2, 4, "node03", 23456, "slurm"}},
		{name: "slurm without job id", env: with(slurm, "SLURM_JOB_ID", "<unset>"), err: "MASTER_PORT is not set"},

		{name: "rank without world size", env: map[string]string{"RANK": "1"}, err: "WORLD_SIZE is not set"},
		{name: "rank too large", env: with(torchrun, "RANK", "8"), err: "RANK=8 is not below WORLD_SIZE=8"},
		{name: "world size zero", env: with(torchrun, "WORLD_SIZE", "0", "RANK", "0"), err: "WORLD_SIZE=0"},
		{name: "not a number", env: with(torchrun, "RANK", "two"), err: `RANK="two": want a non-negative integer`},
		{name: "negative", env: with(torchrun, "LOCAL_RANK", "-1"), err: "LOCAL_RANK=\"-1\""},
		{name: "local rank alone", env: with(torchrun, "LOCAL_WORLD_SIZE", "<unset>"), err: "LOCAL_WORLD_SIZE is not set"},
		{name: "local rank too large", env: with(torchrun, "LOCAL_RANK", "4"), err: "LOCAL_RANK=4 is not below LOCAL_WORLD_SIZE=4"},
		{name: "local world too large", env: with(torchrun, "LOCAL_WORLD_SIZE", "9"), err: "LOCAL_WORLD_SIZE=9"},
		{name: "local rank above rank", env: with(torchrun, "RANK", "0", "LOCAL_RANK", "1"), err: "LOCAL_RANK=1 exceeds RANK=0"},
		{name: "no master addr", env: with(torchrun, "MASTER_ADDR", "<unset>"), err: "MASTER_ADDR is not set"},
		{name: "empty master addr", env: with(torchrun, "MASTER_ADDR", ""), err: "MASTER_ADDR is not set"},
		{name: "no master port", env: with(torchrun, "MASTER_PORT", "<unset>"), err: "MASTER_PORT is not set"},
		{name: "port out of range", env: with(torchrun, "MASTER_PORT", "70000"), err: "MASTER_PORT=70000: want 1..65535"},
		{name: "slurm procid too large", env: with(slurm, "SLURM_PROCID", "8"), err: "SLURM_PROCID=8 is not below SLURM_NTASKS=8"},
		{name: "slurm no localid", env: with(slurm, "SLURM_LOCALID", "<unset>"), err: "SLURM_LOCALID is not set"},
		{name: "slurm bad tasks per node", env: with(slurm, "SLURM_TASKS_PER_NODE", "4(x"), err: "SLURM_TASKS_PER_NODE"},
		{name: "slurm node beyond tasks per node", env: with(slurm, "SLURM_NODEID", "5"), err: "SLURM_NODEID is beyond"},
		{name: "slurm localid beyond node", env: with(slurm, "SLURM_LOCALID", "4"), err: "SLURM_LOCALID=4 is not below tasks on this node=4"},
		{name: "slurm bad nodelist", env: with(slurm, "SLURM_JOB_NODELIST", "node[05-03]"), err: "SLURM_JOB_NODELIST: node list \"node[05-03]\": range \"05-03\" runs backwards"},
		{name: "slurm no nodelist", env: with(slurm, "SLURM_JOB_NODELIST", "<unset>"), err: "neither MASTER_ADDR nor SLURM_JOB_NODELIST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEnv(lookupIn(tc.env))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("got %+v, %v; want an error containing %q", got, err, tc.err)
			case tc.err == "" && got != tc.want:
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMasterAddr(t *testing.T) {
	for _, tc := range []struct {
		host string
		want string
	}{{"node03", "node03:29500"}, {"::1", "[::1]:29500"}} {
		if got := (LaunchEnv{MasterHost: tc.host, MasterPort: 29500}).MasterAddr(); got != tc.want {
			t.Errorf("MasterAddr(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}

func TestNodeList(t *testing.T) {
	for _, tc := range []struct {
		list  string
		first string
		all   string // comma-joined expansion
	}{
		{"node01", "node01", "node01"},
		{"node[03-05,07]", "node03", "node03,node04,node05,node07"},
		{"node[03-05,07],gpu1", "node03", "node03,node04,node05,node07,gpu1"},
		{"gpu1,node[1-2]", "gpu1", "gpu1,node1,node2"},
		{"n[8-10]", "n8", "n8,n9,n10"},
		{"n[08-10]", "n08", "n08,n09,n10"},
		{"rack[1-2]-n[1,3]", "rack1-n1", "rack1-n1,rack1-n3,rack2-n1,rack2-n3"},
		{"[1-2]x", "1x", "1x,2x"},
		{"10.0.0.1,10.0.0.2", "10.0.0.1", "10.0.0.1,10.0.0.2"},
		{"a-b.example", "a-b.example", "a-b.example"},
	} {
		first, err := FirstHost(tc.list)
		if err != nil || first != tc.first {
			t.Errorf("FirstHost(%q) = %q, %v; want %q", tc.list, first, err, tc.first)
		}
		all, err := ExpandNodeList(tc.list, 100)
		if err != nil || strings.Join(all, ",") != tc.all {
			t.Errorf("ExpandNodeList(%q) = %q, %v; want %q", tc.list, all, err, tc.all)
		}
	}
	for _, tc := range []struct{ list, err string }{
		{"", "empty"},
		{"   ", "empty"},
		{"node[1-2", "unclosed '['"},
		{"node1]", "']' without '['"},
		{"node[]", "bad range \"\""},
		{"node[a-b]", "bad range \"a-b\""},
		{"node[3-1]", "runs backwards"},
		{"node[1-2-3]", "bad range"},
		{"node[1,,2]", "bad range \"\""},
		{"a,,b", "empty host name"},
		{"a,", "empty host name"},
		{",a", "empty host name"},
		{"node 1", "space"},
		{"node[99999999999]", "bad range"},
	} {
		if _, err := FirstHost(tc.list); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("FirstHost(%q): %v, want an error containing %q", tc.list, err, tc.err)
		}
	}
	if _, err := ExpandNodeList("n[1-1000000]", 1000); err == nil || !strings.Contains(err.Error(), "more than 1000 hosts") {
		t.Errorf("a huge range: %v, want it refused", err)
	}
}

// FuzzNodeList: the parser never panics; when a list parses, its first
// host is the first of its expansion, and every host is a plain name that
// parses to itself.
func FuzzNodeList(f *testing.F) {
	for _, s := range []string{"node[03-05,07]", "a,b", "r[1-2]n[01-03],x", "n[8-10]", "[", "]", "a[1-", "x[0]y[9-9]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		first, err := FirstHost(list)
		if err != nil {
			return
		}
		all, err := ExpandNodeList(list, 64)
		if err != nil {
			if !strings.Contains(err.Error(), "more than 64 hosts") {
				t.Fatalf("FirstHost accepts %q but ExpandNodeList says %v", list, err)
			}
			return
		}
		if len(all) == 0 || all[0] != first {
			t.Fatalf("FirstHost(%q) = %q, expansion %q", list, first, all)
		}
		for _, h := range all {
			if h == "" || strings.ContainsAny(h, "[],") {
				t.Fatalf("%q expands to the host %q", list, h)
			}
			if again, err := FirstHost(h); err != nil || again != h {
				t.Fatalf("host %q (from %q) parses to %q, %v", h, list, again, err)
			}
		}
	})
}
