package nicfeat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// State files. Restore runs at a clean exit; a run killed (SIGKILL, a
// crash) leaves the features it turned off off, and the next run, finding
// them off, would not count them as its own. So before it changes
// anything a run records, per interface, what it turns off in a state
// file (Record: its PID and boot id, the interface's name and ifindex,
// the features), and deletes the file once it has turned them back on.
// A run that finds a file left by a run that is gone (StateDir.Leftover)
// takes its features as its own to turn back on at exit (AdoptChanges).

// Record is one interface's state file.
type Record struct {
	PID      int      `json:"pid"`
	BootID   string   `json:"boot_id"`
	Iface    string   `json:"interface"`
	Ifindex  int      `json:"ifindex"`
	Features []string `json:"features"` // turned off by the run PID
}

// Leftover verdicts.
const (
	LeftNone  = iota // nothing recorded for the interface
	LeftAdopt        // a run now gone left these off: this run's to restore
	LeftStale        // another boot's, or another interface's by that name: removed
	LeftLive         // a running process's (another passgate): left alone
)

// StateDir holds the state files of one runtime directory.
type StateDir struct {
	Dir    string
	PID    int    // this process's
	BootID string // this boot's (/proc/sys/kernel/random/boot_id)
	// Alive reports whether a process pid runs (this boot); nil: signal 0.
	Alive func(pid int) bool
}

// NewStateDir is the state files under dir for this process and boot.
func NewStateDir(dir string) (*StateDir, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil, fmt.Errorf("boot id: %w", err)
	}
	return &StateDir{Dir: dir, PID: os.Getpid(), BootID: strings.TrimSpace(string(b))}, nil
}

func (s *StateDir) path(iface string) string {
	return filepath.Join(s.Dir, "rx-offloads."+iface+".json")
}

func (s *StateDir) alive(pid int) bool {
	if s.Alive != nil {
		return s.Alive(pid)
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// Write records, atomically (a temporary file renamed over it), that this
// process turned features off on the interface iface of index ifindex.
func (s *StateDir) Write(iface string, ifindex int, features []string) error {
	b, err := json.Marshal(Record{PID: s.PID, BootID: s.BootID, Iface: iface, Ifindex: ifindex, Features: features})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.Dir, ".rx-offloads.*")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.path(iface))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// Remove deletes iface's state file, if any.
func (s *StateDir) Remove(iface string) error {
	if err := os.Remove(s.path(iface)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// Leftover reads iface's state file and says what it is to this run (a
// Left verdict), with its record. A file written this boot by a process
// no longer running (or by this one) for the same interface (name and
// ifindex) is Adopt. One of another boot (the driver's defaults are back
// since) or of another interface by that name (ifindex: deleted and made
// again, with its defaults) is Stale and removed. One whose process still
// runs is Live and kept. An unreadable file is an error and stays.
func (s *StateDir) Leftover(iface string, ifindex int) (Record, int, error) {
	var rec Record
	b, err := os.ReadFile(s.path(iface))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, LeftNone, nil
	}
	if err != nil {
		return rec, LeftNone, fmt.Errorf("state file: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, LeftNone, fmt.Errorf("state file %s: %w", s.path(iface), err)
	}
	switch {
	case rec.BootID != s.BootID || rec.Iface != iface || rec.Ifindex != ifindex:
		return rec, LeftStale, s.Remove(iface)
	case rec.PID != s.PID && rec.PID > 0 && s.alive(rec.PID):
		return rec, LeftLive, nil
	}
	return rec, LeftAdopt, nil
}

// AdoptChanges marks as Changed, for Restore to turn back on, the features of cs
// named in features that are off and can change (left off by a run now
// gone), and returns those it marked.
func AdoptChanges(cs []Change, features []string) []Change {
	var out []Change
	for i := range cs {
		c := &cs[i]
		if !c.Changed && !c.After && !c.Fixed && slices.Contains(features, c.Feature) {
			c.Changed = true
			out = append(out, *c)
		}
	}
	return out
}
