package nicfeat

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestStateFiles: what a run finds of the record another run left, by
// who left it.
func TestStateFiles(t *testing.T) {
	dir := t.TempDir()
	running := map[int]bool{200: true}
	st := func(pid int, boot string) *StateDir {
		return &StateDir{Dir: dir, PID: pid, BootID: boot, Alive: func(p int) bool { return running[p] || p == pid }}
	}
	if _, v, err := st(300, "b1").Leftover("lan0", 5); v != LeftNone || err != nil {
		t.Fatalf("no file: verdict %d %v", v, err)
	}
	for _, c := range []struct {
		name          string
		writer        int
		writerBoot    string
		ifindex       int
		want          int
		fileRemaining bool
	}{
		{"killed run", 100, "b1", 5, LeftAdopt, true},
		{"own record", 300, "b1", 5, LeftAdopt, true},
		{"running passgate", 200, "b1", 5, LeftLive, true},
		{"other boot", 100, "b0", 5, LeftStale, false},
		{"interface made again", 100, "b1", 6, LeftStale, false},
	} {
		if err := st(c.writer, c.writerBoot).Write("lan0", c.ifindex, []string{"rx-gro", "rx-vlan-hw-parse"}); err != nil {
			t.Fatal(err)
		}
		rec, v, err := st(300, "b1").Leftover("lan0", 5)
		if err != nil || v != c.want {
			t.Errorf("%s: verdict %d %v, want %d", c.name, v, err, c.want)
		}
		if rec.PID != c.writer || rec.Iface != "lan0" || rec.Ifindex != c.ifindex || !slices.Equal(rec.Features, []string{"rx-gro", "rx-vlan-hw-parse"}) {
			t.Errorf("%s: record %+v", c.name, rec)
		}
		if _, err := os.Stat(filepath.Join(dir, "rx-offloads.lan0.json")); (err == nil) != c.fileRemaining {
			t.Errorf("%s: file there %v, want %v", c.name, err == nil, c.fileRemaining)
		}
		// Another interface's record is another file.
		if _, v, _ := st(300, "b1").Leftover("wan0", 5); v != LeftNone {
			t.Errorf("%s: wan0's verdict %d", c.name, v)
		}
	}
	// Written by renaming: no temporary file stays; removed once restored.
	if err := st(300, "b1").Remove("lan0"); err != nil {
		t.Fatal(err)
	}
	if err := st(300, "b1").Remove("lan0"); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("left in the directory: %v", es)
	}
	// A file that is no record is an error, and stays for a human.
	os.WriteFile(filepath.Join(dir, "rx-offloads.lan0.json"), []byte("{"), 0o644)
	if _, v, err := st(300, "b1").Leftover("lan0", 5); err == nil || v != LeftNone {
		t.Errorf("torn file: verdict %d %v", v, err)
	}
	// A real process: this test's is alive, a PID past pid_max is not.
	real := &StateDir{Dir: dir, PID: 1}
	if !real.alive(os.Getpid()) || real.alive(1<<22+1) {
		t.Error("signal 0 liveness")
	}
}

// TestAdoptChanges: of the features a gone run recorded, those found off
// and changeable become this run's to restore; one it turned off itself,
// one on, one fixed and one not recorded do not change.
func TestAdoptChanges(t *testing.T) {
	cs := []Change{
		{Iface: "lan0", Feature: "rx-gro"},                                      // left off by the gone run
		{Iface: "lan0", Feature: "rx-lro", Fixed: true},                         // fixed off
		{Iface: "lan0", Feature: "rx-gro-hw", Before: true, Changed: true},      // this run's
		{Iface: "lan0", Feature: "rx-vlan-hw-parse", Before: true, After: true}, // on: refused
		{Iface: "lan0", Feature: "rx-gro-list"},                                 // off, not recorded
	}
	got := AdoptChanges(cs, []string{"rx-gro", "rx-lro", "rx-gro-hw", "rx-vlan-hw-parse"})
	if len(got) != 1 || got[0].Feature != "rx-gro" || !got[0].Changed {
		t.Fatalf("adopted %+v", got)
	}
	var changed []string
	for _, c := range cs {
		if c.Changed {
			changed = append(changed, c.Feature)
		}
	}
	if !slices.Equal(changed, []string{"rx-gro", "rx-gro-hw"}) {
		t.Errorf("Restore would turn on %q", changed)
	}
}
