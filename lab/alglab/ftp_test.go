//go:build lab

package alglab

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"passgate/lab"
	"passgate/lab/labtest"
)

// startVsftpd runs vsftpd in the foreground on srv1 serving root read-only
// to anonymous users, active (from port 20) and passive.
func startVsftpd(t *testing.T, l *lab.Lab, root string) {
	t.Helper()
	empty := publicDir(t, "vsftpd-empty")
	conf := fmt.Sprintf(`listen=YES
listen_ipv6=NO
listen_address=%s
listen_port=21
background=NO
anonymous_enable=YES
no_anon_password=YES
anon_root=%s
local_enable=NO
write_enable=NO
pasv_enable=YES
port_enable=YES
connect_from_port_20=YES
seccomp_sandbox=NO
secure_chroot_dir=%s
xferlog_enable=NO
vsftpd_log_file=/dev/null
dirmessage_enable=NO
`, lab.Srv1, root, empty)
	path := filepath.Join(publicDir(t, "vsftpd-conf"), "vsftpd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := labtest.StartT(t, l, lab.Server1, "vsftpd", path)
	if err := labtest.WaitListen(l, lab.Server1, "tcp", lab.Srv1, 21, 15*time.Second, p); err != nil {
		t.Fatal(err)
	}
}

// TestFTP downloads a file with curl from lan1 through passgate, passive
// (EPSV) and active (EPRT, and PORT with EPRT disabled), and checks the
// bytes and the flow table: the control flow belongs to the "ftp" helper,
// and an active transfer's data connection is an "expected" flow from the
// server's port 20.
func TestFTP(t *testing.T) {
	l := getLab(t)
	root := publicDir(t, "ftproot")
	want := blob(t, root, "blob.bin", 3<<20)
	startVsftpd(t, l, root)
	g := startGate(t, l, `"filtering": "address-and-port-dependent"`, "")
	url := fmt.Sprintf("ftp://%s/blob.bin", lab.Srv1)
	for _, mode := range []struct {
		name   string
		args   []string
		active bool
	}{
		{"passive", []string{"--ftp-pasv"}, false},
		{"active-eprt", []string{"--ftp-port", "-"}, true},
		{"active-port", []string{"--ftp-port", "-", "--disable-eprt"}, true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "got")
			args := append([]string{"-sS", "--max-time", "30", "-o", out}, mode.args...)
			if res, err := labtest.Run(l, 40*time.Second, lab.Lan1, "curl", append(args, url)...); err != nil {
				t.Fatalf("curl %s: %v\n%s\n%s", mode.name, err, res, g.status(t))
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if s := sum(got); s != want {
				t.Fatalf("%s: got %d bytes sha256 %s, want %s", mode.name, len(got), s, want)
			}
			fs := g.flows(t)
			var control, data bool
			for _, f := range fs {
				if f.Proto != "tcp" || f.Inside.Addr().String() != lab.LAN1 {
					continue
				}
				if f.Remote.String() == lab.Srv1+":21" && f.Helper == "ftp" {
					control = true
				}
				if f.Remote.String() == lab.Srv1+":20" && f.Origin == "expected" {
					data = true
				}
			}
			if !control {
				t.Errorf("%s: no control flow to %s:21 with helper ftp in %+v", mode.name, lab.Srv1, fs)
			}
			if mode.active && !data {
				t.Errorf("%s: no expected data flow from %s:20 in %+v", mode.name, lab.Srv1, fs)
			}
		})
	}
}
