//go:build lab

package lab_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "passgate/lab"
	"passgate/lab/labtest"
)

// stdoutOf runs a command in node and returns its stdout alone.
func stdoutOf(t testing.TB, l *Lab, d time.Duration, node, name string, args ...string) []byte {
	t.Helper()
	out, err := labtest.Stdout(l, d, node, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// must fails the test on a wait's error.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
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
	out, err := labtest.Stdout(l, d, node, Python, append([]string{tool}, args...)...)
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
func startHTTP(t testing.TB, l *Lab, node, addr string, port int, root string) *labtest.Proc {
	t.Helper()
	p := labtest.StartT(t, l, node, Python, "-m", "http.server", "--bind", addr, "--directory", root, fmt.Sprint(port))
	must(t, labtest.WaitListen(l, node, "tcp", addr, port, 10*time.Second, nil))
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
	return labtest.Stdout(l, 30*time.Second, node, "curl", "-sS", "--fail", "--connect-timeout", "5", "--max-time", "20", "-o", "-", url)
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
