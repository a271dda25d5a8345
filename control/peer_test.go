package control

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPeerAllowed(t *testing.T) {
	l := &peerListener{policy: PeerPolicy{GID: 1234}, self: 999}
	for _, c := range []struct {
		cred unix.Ucred
		want bool
	}{
		{unix.Ucred{Uid: 0, Gid: 0}, true},
		{unix.Ucred{Uid: 999, Gid: 999}, true},
		{unix.Ucred{Uid: 1000, Gid: 1234}, true},
		{unix.Ucred{Uid: 1000, Gid: 1000, Pid: 1 << 30}, false}, // no such process: no supplementary groups
	} {
		if got := l.allowed(&c.cred); got != c.want {
			t.Errorf("%+v: allowed %v, want %v", c.cred, got, c.want)
		}
	}
	l.policy.GID = -1
	if l.allowed(&unix.Ucred{Uid: 1000, Gid: 1234}) {
		t.Error("no group configured, yet a non-root user got in")
	}
}

// helperDialEnv makes the test binary a client that dials the socket and
// prints what it reads.
const helperDialEnv = "PASSGATE_PEER_TEST_DIAL"

func TestMain(m *testing.M) {
	if p := os.Getenv(helperDialEnv); p != "" {
		c, err := net.Dial("unix", p)
		if err != nil {
			os.Stdout.WriteString("dial: " + err.Error())
			os.Exit(0)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		os.Stdout.WriteString("read: " + string(b))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A peer that is neither root, passgate's user nor in the group is closed
// before anything is served; passgate's own user is served.
func TestPeerCredRefusesOthers(t *testing.T) {
	// A directory everyone may enter, holding the socket and a copy of the
	// test binary the other user can run.
	dir, err := os.MkdirTemp("", "pgpeer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666) // the file mode lets everyone in: the check must not
	rl, err := Restrict(ln, path, PeerPolicy{GID: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	go func() {
		for {
			c, err := rl.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	run := func(cred *syscall.Credential) string {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperDialEnv+"="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client: %v: %s", err, out)
		}
		return string(out)
	}
	if got := run(nil); got != "read: hello" {
		t.Fatalf("passgate's own user: %q", got)
	}
	if os.Geteuid() == 0 {
		if got := run(&syscall.Credential{Uid: 65534, Gid: 65534}); strings.Contains(got, "hello") {
			t.Fatalf("nobody was served: %q", got)
		}
		return
	}
	// Not root: make our own user a stranger to the listener.
	rl.(*peerListener).self = -2
	if got := run(nil); strings.Contains(got, "hello") {
		t.Fatalf("a stranger was served: %q", got)
	}
}
