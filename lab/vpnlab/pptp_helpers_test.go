//go:build lab

package vpnlab

import (
	"context"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"passgate/lab/labtest"
)

// pptpSetup builds passgate (once per package run, before the test's
// clock starts), starts the test's clock of budget, brings the lab up
// under prefix and returns the context and the environment. Everything
// started through the environment ends, and the lab goes down, when the
// test ends; on failure the logs in its directory are printed.
func pptpSetup(t *testing.T, prefix string, budget time.Duration) (context.Context, *pptpEnv) {
	t.Helper()
	labtest.Passgate(t)
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	t.Cleanup(cancel)
	dir := t.TempDir()
	e, down, err := pptpUpLab(ctx, prefix, dir)
	if err != nil {
		t.Fatalf("lab %s: %v", prefix, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			pptpDumpLogs(t, dir)
		}
		down()
	})
	return ctx, e
}

// pptpDumpLogs prints the end of every log in dir.
func pptpDumpLogs(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	more, _ := filepath.Glob(filepath.Join(dir, "*.out"))
	files = append(files, more...)
	sort.Strings(files)
	for _, f := range files {
		t.Logf("==== %s ====\n%s", filepath.Base(f), pptpTail(f, 3000))
	}
}
