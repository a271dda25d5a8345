package labtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"passgate/lab"
)

// The one harness of the lab test packages: Main is their TestMain, Dir
// their shared temporary directory, Passgate the binary built once per
// package run.

var (
	mainDir string // made by Main, removed when the tests end

	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// buildTimeout bounds building passgate (2 cores, a cold cache).
const buildTimeout = 5 * time.Minute

// Main is the TestMain of a lab test package (files built with the lab
// tag, run as root by test.sh): it fails the whole package, never skips,
// without root or with a package of lab/packages.txt missing; then it
// makes Dir, runs the tests, runs teardown (the package's shared lab and
// daemons) and removes Dir. It does not return.
func Main(m *testing.M, teardown ...func()) {
	os.Exit(runMain(m, teardown))
}

func runMain(m *testing.M, teardown []func()) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "lab tests build network namespaces: run them as root (sudo ./test.sh)")
		return 1
	}
	if miss := lab.Missing(lab.Packages...); len(miss) > 0 {
		fmt.Fprintf(os.Stderr, "lab tests: missing Debian packages %s (sudo ./test.sh installs lab/packages.txt)\n", strings.Join(miss, " "))
		return 1
	}
	var err error
	mainDir, err = os.MkdirTemp("", "passgate-labtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(mainDir)
	// The lab's daemons run as other users (pptpd's, vsftpd's children).
	if err := os.Chmod(mainDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	for _, f := range teardown {
		f()
	}
	return code
}

// Dir is the package run's temporary directory (Main makes and removes
// it). Each test should keep to a directory of its own under it.
func Dir() string {
	if mainDir == "" {
		panic("labtest.Dir: the package's TestMain is not labtest.Main")
	}
	return mainDir
}

// PassgateBin builds passgate/cmd/passgate into Dir on its first call
// and returns it; later calls return the same binary (or the same error).
// $PASSGATE_TEST_BIN, if set, is returned instead of building.
func PassgateBin() (string, error) {
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		buildBin, buildErr = buildPassgate(ctx, Dir())
	})
	return buildBin, buildErr
}

// Passgate is PassgateBin for a test: a failed build fails the test.
func Passgate(t testing.TB) string {
	t.Helper()
	bin, err := PassgateBin()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
