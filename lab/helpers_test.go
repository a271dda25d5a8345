package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a process writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a background process a test started in a lab node.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	err    error
}

// spawn starts name args... in node; the caller must stop it.
func spawn(l *Lab, node, name string, args ...string) (*proc, error) {
	p := &proc{name: node + ": " + name + " " + strings.Join(args, " "), done: make(chan struct{})}
	p.cmd = l.Cmd(context.Background(), node, name, args...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// startProc starts name args... in node and arranges for the test's cleanup
// to end it by its PID.
func startProc(t testing.TB, l *Lab, node, name string, args ...string) *proc {
	t.Helper()
	p, err := spawn(l, node, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process by its PID: SIGTERM, then SIGKILL after 3 s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// wait waits up to d for the process to exit by itself.
func (p *proc) wait(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.stop()
		t.Fatalf("%s did not finish within %v\nstdout: %s\nstderr: %s", p.name, d, p.stdout.String(), p.stderr.String())
	}
}

// waitLine waits up to d for line to appear on the process's stdout.
func (p *proc) waitLine(t testing.TB, line string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(p.stdout.String(), "\n") {
			if strings.TrimSpace(l) == line {
				return
			}
		}
		if p.exited() {
			t.Fatalf("%s exited before printing %q: %v\nstdout: %s\nstderr: %s", p.name, line, p.err, p.stdout.String(), p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not print %q within %v\nstderr: %s", p.name, line, d, p.stderr.String())
}

// waitStderr waits up to d for text to appear on the process's stderr.
func (p *proc) waitStderr(t testing.TB, text string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(p.stderr.String(), text) {
			return
		}
		if p.exited() {
			t.Fatalf("%s exited before printing %q: %v\nstderr: %s", p.name, text, p.err, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not print %q within %v\nstderr: %s", p.name, text, d, p.stderr.String())
}

// waitListen waits up to d until node has a listening socket on addr:port
// (proto "tcp" or "udp").
func waitListen(t testing.TB, l *Lab, node, proto, addr string, port int, d time.Duration) {
	t.Helper()
	flag := "-Hltn"
	if proto == "udp" {
		flag = "-Hlun"
	}
	want := fmt.Sprintf("%s:%d", addr, port)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, _ := l.Run(ctx, node, "ss", flag)
		cancel()
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[3] == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: nothing listening on %s/%s within %v", node, want, proto, d)
}

// run runs a command in node with a timeout and fails the test on error.
func run(t testing.TB, l *Lab, d time.Duration, node, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out, err := l.Run(ctx, node, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tryRun runs a command in node with a timeout and returns output and error.
func tryRun(l *Lab, d time.Duration, node, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return l.Run(ctx, node, name, args...)
}

// stdoutOf runs a command in node and returns its stdout alone.
func stdoutOf(t testing.TB, l *Lab, d time.Duration, node, name string, args ...string) []byte {
	t.Helper()
	out, err := tryStdout(l, d, node, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tryStdout runs a command in node and returns its stdout alone; the error
// carries its stderr.
func tryStdout(l *Lab, d time.Duration, node, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := l.Cmd(ctx, node, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %s %s: %v\nstderr: %s", node, name, strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// nettool is the path of testdata/nettool.py.
func nettool(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs("testdata/nettool.py")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startNettoolServer starts a nettool server mode in node and waits for it
// to be ready.
func startNettoolServer(t testing.TB, l *Lab, node string, args ...string) *proc {
	t.Helper()
	p := startProc(t, l, node, Python, append([]string{nettool(t)}, args...)...)
	p.waitLine(t, "ready", 10*time.Second)
	return p
}

// nettoolJSON runs a nettool client mode in node and decodes its JSON answer.
func nettoolJSON(t testing.TB, l *Lab, d time.Duration, node string, v any, args ...string) {
	t.Helper()
	if err := tryNettoolJSON(l, d, node, v, args...); err != nil {
		t.Fatal(err)
	}
}

func tryNettoolJSON(l *Lab, d time.Duration, node string, v any, args ...string) error {
	tool, err := filepath.Abs("testdata/nettool.py")
	if err != nil {
		return err
	}
	out, err := tryStdout(l, d, node, Python, append([]string{tool}, args...)...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s: nettool %v: bad JSON %q: %v", node, args, out, err)
	}
	return nil
}

// webRoot is a directory served over HTTP with one file of known content.
type webRoot struct {
	dir    string
	name   string
	size   int
	sha256 string
}

// newWebRoot makes a test's directory holding name with size pseudo-random
// bytes.
func newWebRoot(t testing.TB, name string, size int, seed uint64) webRoot {
	t.Helper()
	w, err := makeWebRoot(t.TempDir(), name, size, seed)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// makeWebRoot writes name with size pseudo-random bytes into dir.
func makeWebRoot(dir, name string, size int, seed uint64) (webRoot, error) {
	// The servers run as root inside namespaces, but keep the tree readable.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return webRoot{}, err
	}
	os.Chmod(dir, 0o755)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		return webRoot{}, err
	}
	sum := sha256.Sum256(data)
	return webRoot{dir: dir, name: name, size: size, sha256: hex.EncodeToString(sum[:])}, nil
}

// startHTTP serves root with python3's http.server on addr:port in node.
func startHTTP(t testing.TB, l *Lab, node, addr string, port int, root string) *proc {
	t.Helper()
	p := startProc(t, l, node, Python, "-m", "http.server", "--bind", addr, "--directory", root, fmt.Sprint(port))
	waitListen(t, l, node, "tcp", addr, port, 10*time.Second)
	return p
}

// curlBody fetches url from node and returns the body; it fails the test
// on any error.
func curlBody(t testing.TB, l *Lab, node, url string) []byte {
	t.Helper()
	b, err := tryCurl(l, node, url)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tryCurl(l *Lab, node, url string) ([]byte, error) {
	return tryStdout(l, 30*time.Second, node, "curl", "-sS", "--fail", "--connect-timeout", "5", "--max-time", "20", "-o", "-", url)
}

// checkBody fails the test unless body is the file of root.
func checkBody(t testing.TB, who string, body []byte, root webRoot) {
	t.Helper()
	if err := root.check(who, body); err != nil {
		t.Error(err)
	}
}

func (root webRoot) check(who string, body []byte) error {
	sum := sha256.Sum256(body)
	if len(body) != root.size || hex.EncodeToString(sum[:]) != root.sha256 {
		return fmt.Errorf("%s: got %d bytes sha256 %x, want %d bytes sha256 %s", who, len(body), sum, root.size, root.sha256)
	}
	return nil
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return hex.EncodeToString(b)
}

// namespacesWithPrefix lists the named network namespaces of a prefix.
func namespacesWithPrefix(t testing.TB, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			got = append(got, f[0])
		}
	}
	return got
}
