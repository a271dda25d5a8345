package labtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"passgate/lab"
)

// Shared is one lab that all the tests of a package share: Get brings it up
// on first use, Down (from TestMain's teardown, see Main) removes it.
type Shared struct {
	Prefix string // the lab's namespace prefix

	once sync.Once
	l    *lab.Lab
	err  error
}

// Get returns the lab, bringing it up (within 3 minutes) on the first call;
// if that failed, it fails t, and every later test too.
func (s *Shared) Get(t testing.TB) *lab.Lab {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		s.l, s.err = lab.Up(ctx, s.Prefix)
	})
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.l
}

// Down removes the lab if Get brought it up; an error goes to stderr.
func (s *Shared) Down() {
	if s.l == nil {
		return
	}
	if err := s.l.Down(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: lab down: %v\n", s.Prefix, err)
	}
}

// StartLabGateT runs the freshly built passgate (Passgate) in the lab's
// router with the lab's LAN and WAN interfaces and addresses, the admin
// server off and a control socket in a t.TempDir, plus the top-level
// configuration members in fields (each one `"name": value`), and waits
// for it as StartGateT does.
func StartLabGateT(t testing.TB, l *lab.Lab, fields ...string) *Gate {
	t.Helper()
	return StartLabGateArgsT(t, l, nil, fields...)
}

// StartLabGateArgsT is StartLabGateT with args after passgate run's own
// (GateOptions.Args: --driver afpacket overrides PASSGATE_DRIVER).
func StartLabGateArgsT(t testing.TB, l *lab.Lab, args []string, fields ...string) *Gate {
	t.Helper()
	return StartLabGateDirT(t, l, t.TempDir(), args, fields...)
}

// StartLabGateDirT is StartLabGateArgsT with passgate's directory (its
// config, its control socket and the runtime records beside it) dir, for
// a run that must find what an earlier one left there.
func StartLabGateDirT(t testing.TB, l *lab.Lab, dir string, args []string, fields ...string) *Gate {
	t.Helper()
	sock := filepath.Join(dir, "passgate.sock")
	var b strings.Builder
	fmt.Fprintf(&b, "{\n  \"lan\": {\"interface\": %q, \"address\": %q},\n  \"wan\": {\"interface\": %q, \"address\": %q},\n",
		lab.LANIface, lab.LANCIDR, lab.WANIface, lab.WANCIDR)
	for _, f := range fields {
		b.WriteString("  " + f + ",\n")
	}
	fmt.Fprintf(&b, "  \"admin\": {\"enabled\": false},\n  \"control_socket\": %q\n}\n", sock)
	return StartGateT(context.Background(), t, l, GateOptions{Bin: Passgate(t), Dir: dir, Config: b.String(), Sock: sock, Args: args})
}

// NonZero is a counter map without its zeros, for a test's log.
func NonZero(m map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
