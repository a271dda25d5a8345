//go:build lab

package alglab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
)

// The tests share one lab (prefix pgalg, built on first use and removed
// when the package's tests end) and start a passgate daemon of their own
// with the configuration they need. They never skip: without root, the
// packages of lab/packages.txt or a daemon that starts, they fail.

var shared = labtest.Shared{Prefix: "pgalg"}

func TestMain(m *testing.M) { labtest.Main(m, shared.Down) }

// getLab returns the shared lab, bringing it up on first use.
func getLab(t *testing.T) *lab.Lab {
	t.Helper()
	return shared.Get(t)
}

// gate is a running passgate daemon.
type gate struct{ *labtest.Gate }

// startGate runs passgate in the router namespace with the lab's
// interfaces, nat holding the "nat" object's fields and helpers the
// "helpers" object's (either may be empty), and waits until its control
// socket answers.
func startGate(t *testing.T, l *lab.Lab, nat, helpers string) *gate {
	t.Helper()
	return &gate{labtest.StartLabGateT(t, l, `"nat": {`+nat+`}`, `"helpers": {`+helpers+`}`)}
}

// flows reads the live flow table (`passgate conntrack --json`).
func (g *gate) flows(t *testing.T) []control.Flow {
	t.Helper()
	raw, err := g.CLI(context.Background(), "conntrack", "--json")
	if err != nil {
		t.Fatalf("passgate conntrack --json: %v\n%s", err, raw)
	}
	var fs []control.Flow
	if err := json.Unmarshal(raw, &fs); err != nil {
		t.Fatalf("passgate conntrack --json: %v\n%s", err, raw)
	}
	return fs
}

func (g *gate) status(t *testing.T) string {
	out, _ := g.CLI(context.Background(), "status")
	return string(out)
}

// blob writes a file of n pseudo-random bytes, world-readable, into dir and
// returns its sha256.
func blob(t *testing.T, dir, name string, n int) string {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return sum(b)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// publicDir makes a directory under the package's temporary directory that
// daemons dropping privileges can read (t.TempDir's parents are 0700).
func publicDir(t *testing.T, name string) string {
	t.Helper()
	d, err := os.MkdirTemp(labtest.Dir(), name+"-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// helperCounters returns a helper's counters from `passgate status --json`.
func (g *gate) helperCounters(t *testing.T, name string) control.HelperCounters {
	t.Helper()
	raw, err := g.CLI(context.Background(), "status", "--json")
	if err != nil {
		t.Fatalf("passgate status --json: %v\n%s", err, raw)
	}
	var st control.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("passgate status --json: %v\n%s", err, raw)
	}
	c, ok := st.NAT.Helpers[name]
	if !ok {
		t.Fatalf("no counters for helper %q in passgate status --json:\n%s", name, raw)
	}
	return c
}
