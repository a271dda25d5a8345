//go:build lab

package grolab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
)

var shared = labtest.Shared{Prefix: "pggro"}

func TestMain(m *testing.M) { labtest.Main(m, shared.Down) }

const (
	size = 32 << 20 // bytes srv1 sends lan1
	port = "9100"
	// bound is how long the whole transfer may take through passgate with
	// the offloads off (it takes well under a second on the lab's veths;
	// with GRO on it stalls: see "kept").
	bound = 20 * time.Second
)

// The router's interfaces and the ethtool -k names of what the test
// switches and checks: GRO (rx-gro) and VLAN stripping (rx-vlan-hw-parse),
// which veth has on by default.
var (
	ifaces = []string{lab.LANIface, lab.WANIface}
	gro    = "generic-receive-offload"
	vlan   = "rx-vlan-offload"
)

// wantHash is the SHA-256 of what bulk.py serve sends.
func wantHash() string {
	block := bytes.Repeat(func() []byte { s := sha256.Sum256([]byte("passgate")); return s[:] }(), 2048)
	h := sha256.New()
	for n := 0; n < size; n += len(block) {
		h.Write(block[:min(len(block), size-n)])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// offloads reads the router's interfaces' features as ethtool -k shows
// them: "lan0 generic-receive-offload" -> "on".
func offloads(t *testing.T, l *lab.Lab) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, i := range ifaces {
		out := labtest.RunT(t, l, 10*time.Second, lab.Router, "ethtool", "-k", i)
		for _, line := range strings.Split(out, "\n") {
			name, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
			if ok {
				m[i+" "+name] = strings.Fields(v)[0]
			}
		}
	}
	return m
}

// expect fails t unless feature is state on both interfaces.
func expect(t *testing.T, l *lab.Lab, when, state string, features ...string) {
	t.Helper()
	m := offloads(t, l)
	for _, i := range ifaces {
		for _, f := range features {
			if got := m[i+" "+f]; got != state {
				t.Errorf("%s: %s %s is %q, want %s", when, i, f, got, state)
			}
		}
	}
}

type result struct {
	Bytes   int     `json:"bytes"`
	SHA256  string  `json:"sha256"`
	Seconds float64 `json:"seconds"`
	EOF     bool    `json:"eof"`
}

// fetch has lan1 read srv1's transfer for at most d.
func fetch(t *testing.T, l *lab.Lab, tool string, d time.Duration) result {
	t.Helper()
	out, err := labtest.Stdout(l, d+15*time.Second, lab.Lan1, lab.Python, tool, "fetch", lab.Srv1, port, strconv.Itoa(int(d.Seconds())))
	if err != nil {
		t.Fatalf("bulk.py fetch: %v\n%s", err, out)
	}
	var r result
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("bulk.py fetch: %v: %s", err, out)
	}
	return r
}

func status(t *testing.T, g *labtest.Gate) *control.Status {
	t.Helper()
	st, err := g.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// states is status's receive offloads: "lan0 rx-gro" -> "turned off".
func states(st *control.Status) map[string]string {
	m := map[string]string{}
	for _, o := range st.RxOffloads {
		m[o.Interface+" "+o.Feature] = o.State
	}
	return m
}

func TestGRO(t *testing.T) {
	labtest.Passgate(t) // built before the lab's clock starts
	l := shared.Get(t)
	tool, err := filepath.Abs("testdata/bulk.py")
	if err != nil {
		t.Fatal(err)
	}
	// The lab turns every offload off; a real router's NIC has GRO on.
	for _, i := range ifaces {
		labtest.RunT(t, l, 10*time.Second, lab.Router, "ethtool", "-K", i, "gro", "on")
	}
	expect(t, l, "before passgate", "on", gro, vlan)
	srv := labtest.StartT(t, l, lab.Server1, lab.Python, tool, "serve", port, strconv.Itoa(size))
	if err := srv.WaitLine("ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	afpacket := []string{"--driver", "afpacket"} // sees frames after GRO

	// With the offloads kept on, GRO hands passgate frames of up to 64 KiB:
	// the engine refuses them (frag_needed: DF set, larger than the MTU)
	// and the sender, whose segments fit the path MTU, never shrinks them;
	// the transfer crawls on the few segments GRO leaves alone. This is
	// what passgate did before it turned the offloads off.
	t.Run("kept", func(t *testing.T) {
		g := labtest.StartLabGateArgsT(t, l, afpacket, `"keep_rx_offloads": true`)
		st := status(t, g)
		if s := states(st); s["lan0 rx-gro"] != "on" || s["wan0 rx-gro"] != "on" {
			t.Errorf("status receive offloads %v, want rx-gro on on both", s)
		}
		r := fetch(t, l, tool, 5*time.Second)
		st = status(t, g)
		t.Logf("kept: %d of %d bytes in %.1f s; NAT drops %v, losses %v", r.Bytes, size, r.Seconds, labtest.NonZero(st.NAT.Drops), labtest.NonZero(st.Losses))
		if r.Bytes >= size || r.EOF {
			t.Errorf("with GRO on the transfer completed (%d bytes in %.1f s): the lab made no frame larger than the MTU", r.Bytes, r.Seconds)
		}
		if st.NAT.Drops["frag_needed"] == 0 {
			t.Errorf("with GRO on no frame over the MTU reached passgate: NAT drops %v", st.NAT.Drops)
		}
		out, err := g.CLI(context.Background(), "status")
		if err != nil || !strings.Contains(string(out), "RECEIVE OFFLOADS ON (frames over the MTU or without their VLAN tag are dropped): lan0 rx-gro") {
			t.Errorf("passgate status does not warn of GRO on: %v\n%s", err, out)
		}
		g.Stop()
		expect(t, l, "after a run that kept them", "on", gro, vlan)
	})

	// On AF_PACKET, which sees what GRO made; and on the suite's driver
	// too (AF_XDP attaches its program after the offloads are off and
	// detaches it before they are turned back on).
	drivers := []string{"afpacket"}
	if d := labtest.Driver(); d != "afpacket" {
		drivers = append(drivers, d)
	}
	for _, d := range drivers {
		t.Run("turned off/"+d, func(t *testing.T) { turnedOff(t, l, tool, d) })
	}

	// SIGKILL leaves them off; the next run (its runtime directory the
	// same) finds the killed run's record, takes them as its own, and
	// turns them back on at its exit.
	t.Run("killed", func(t *testing.T) {
		dir := t.TempDir()
		g := labtest.StartLabGateDirT(t, l, dir, afpacket)
		if err := g.Proc.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := g.Proc.Wait(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		expect(t, l, "after SIGKILL", "off", gro, vlan)
		g = labtest.StartLabGateDirT(t, l, dir, afpacket)
		if s := states(status(t, g)); s["lan0 rx-gro"] != "turned off" || s["wan0 rx-gro"] != "turned off" {
			t.Errorf("second run: status %v, want rx-gro turned off (the killed run's, back on at exit)", s)
		}
		if !strings.Contains(g.Log(), `msg="receive offload left off by a passgate that did not restore it: turned back on at exit" interface=lan0 feature=rx-gro`) {
			t.Errorf("no log line for adopting lan0 rx-gro:\n%s", labtest.Tail(g.Log(), 3000))
		}
		if killed := g.Stop(); killed {
			t.Error("passgate needed SIGKILL")
		}
		expect(t, l, "after the second run", "on", gro, vlan)
		if _, err := os.Stat(filepath.Join(dir, "rx-offloads.lan0.json")); err == nil {
			t.Error("the record stayed after a clean restore")
		}
	})
}

// turnedOff runs passgate on driver with the offloads on: it must turn
// them off, forward the whole transfer, and turn them back on at exit.
func turnedOff(t *testing.T, l *lab.Lab, tool, driver string) {
	g := labtest.StartLabGateArgsT(t, l, []string{"--driver", driver})
	expect(t, l, "while passgate runs", "off", gro, vlan)
	st := status(t, g)
	s := states(st)
	for _, k := range []string{"lan0 rx-gro", "wan0 rx-gro", "lan0 rx-vlan-hw-parse", "wan0 rx-vlan-hw-parse"} {
		if s[k] != "turned off" {
			t.Errorf("status: %s %q, want turned off (all: %v)", k, s[k], s)
		}
	}
	if s["lan0 rx-gro-list"] != "off" {
		t.Errorf("status: lan0 rx-gro-list %q, want off (found off)", s["lan0 rx-gro-list"])
	}
	out, err := g.CLI(context.Background(), "status")
	if err != nil || !strings.Contains(string(out), "receive offloads turned off by passgate (back on at exit): lan0 rx-gro, ") ||
		strings.Contains(string(out), "RECEIVE OFFLOADS ON") {
		t.Errorf("passgate status: %v\n%s", err, out)
	}
	if !strings.Contains(g.Log(), `msg="receive offload turned off (back on at exit)" interface=wan0 feature=rx-gro old=on new=off`) {
		t.Errorf("no log line for wan0 rx-gro:\n%s", labtest.Tail(g.Log(), 3000))
	}

	r := fetch(t, l, tool, bound)
	st = status(t, g)
	t.Logf("turned off: %d bytes in %.2f s; NAT drops %v, losses %v", r.Bytes, r.Seconds, labtest.NonZero(st.NAT.Drops), labtest.NonZero(st.Losses))
	if r.Bytes != size || !r.EOF || r.SHA256 != wantHash() {
		t.Errorf("lan1 got %d bytes (eof %v, sha256 %s) in %.1f s, want %d bytes ending in eof, sha256 %s",
			r.Bytes, r.EOF, r.SHA256, r.Seconds, size, wantHash())
	}
	if n := st.Losses["tx_bad_frame"]; n != 0 {
		t.Errorf("tx_bad_frame %d", n)
	}
	if n := st.NAT.Drops["frag_needed"]; n != 0 {
		t.Errorf("NAT dropped %d frames over the MTU", n)
	}

	if killed := g.Stop(); killed {
		t.Error("passgate needed SIGKILL")
	}
	expect(t, l, "after passgate stopped", "on", gro, vlan)
	if !strings.Contains(g.Log(), `msg="receive offload restored" interface=lan0 feature=rx-gro old=off new=on`) {
		t.Errorf("no log line for restoring lan0 rx-gro:\n%s", labtest.Tail(g.Log(), 3000))
	}
}
