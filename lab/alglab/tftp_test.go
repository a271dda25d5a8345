//go:build lab

package alglab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
)

// tftpGet downloads name from srv1 with tftp-hpa on lan1 (binary mode,
// retransmitting each second, giving up after 6 s) into a file and
// returns its bytes.
func tftpGet(t *testing.T, l *lab.Lab, name string) ([]byte, string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "got")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := l.Cmd(ctx, lab.Lan1, "tftp", "-v", lab.Srv1)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("mode octet\nrexmt 1\ntimeout 6\nget %s %s\nquit\n", name, out))
	res, err := cmd.CombinedOutput()
	if err != nil {
		return nil, string(res), err
	}
	b, err := os.ReadFile(out)
	return b, string(res), err
}

// startTftpd runs tftpd-hpa in the foreground on srv1:69 serving root.
func startTftpd(t *testing.T, l *lab.Lab, root string) {
	t.Helper()
	p := labtest.StartT(t, l, lab.Server1, "in.tftpd", "-L", "-a", lab.Srv1+":69", "-u", "nobody", "-s", root)
	if err := labtest.WaitListen(l, lab.Server1, "udp", lab.Srv1, 69, 15*time.Second, p); err != nil {
		t.Fatal(err)
	}
}

// TestTFTP downloads a file with tftp-hpa from lan1 from tftpd-hpa on
// srv1 through passgate with address-and-port-dependent filtering: the
// server answers from a new port, which only the tftp helper's
// expectation lets in. With the helper switched off in the configuration
// the download fails.
func TestTFTP(t *testing.T) {
	l := getLab(t)
	root := publicDir(t, "tftproot")
	want := blob(t, root, "blob.bin", 256<<10)
	startTftpd(t, l, root)
	const apdf = `"filtering": "address-and-port-dependent"`

	t.Run("helper-on", func(t *testing.T) {
		g := startGate(t, l, apdf, "")
		got, res, err := tftpGet(t, l, "blob.bin")
		if err != nil {
			t.Fatalf("tftp get: %v\n%s\n%s", err, res, g.status(t))
		}
		if s := sum(got); s != want {
			t.Fatalf("got %d bytes sha256 %s, want %s\n%s", len(got), s, want, res)
		}
		var request, data bool
		fs := g.flows(t)
		for _, f := range fs {
			if f.Proto != "udp" || f.Inside.Addr().String() != lab.LAN1 || f.Remote.Addr().String() != lab.Srv1 {
				continue
			}
			if f.Remote.String() == lab.Srv1+":69" && f.Helper == "tftp" {
				request = true
			}
			if f.Remote.String() != lab.Srv1+":69" && f.Origin == "expected" {
				data = true
			}
		}
		if !request || !data {
			t.Fatalf("want the request flow with helper tftp and an expected transfer flow; flows: %+v", fs)
		}
		g.Stop()
	})

	t.Run("helper-off", func(t *testing.T) {
		g := startGate(t, l, apdf, `"tftp": false`)
		got, res, err := tftpGet(t, l, "blob.bin")
		if err == nil && sum(got) == want {
			t.Fatalf("the download succeeded with the tftp helper off under address-and-port-dependent filtering\n%s", res)
		}
		if !strings.Contains(g.status(t), "filtered") {
			t.Logf("status does not name filtered drops:\n%s", g.status(t))
		}
		for _, f := range g.flows(t) {
			if f.Origin == "expected" || f.Helper == "tftp" {
				t.Fatalf("helper off, yet flow %+v", f)
			}
		}
		g.Stop()
	})
}
