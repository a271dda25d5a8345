package lab

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Python is the interpreter the lab uses: Debian's, which has scapy; a
// python3 earlier on PATH (pyenv, venv) may lack it.
const Python = "/usr/bin/python3"

// Tool is a Debian package the lab needs and what shows it installed.
type Tool struct {
	// Command is a name looked up on PATH, or an absolute path (a glob
	// is allowed) that must exist, executable or not.
	Command string
	Package string
}

//go:embed packages.txt
var packagesTxt string

// Packages is the one list of the Debian packages the lab, the demo, the
// lab tests and the benchmark need: packages.txt, which test.sh reads too.
var Packages []Tool

// BaseTools are the packages marked "demo" in packages.txt: what lab.sh
// and `passgate demo` need.
var BaseTools []Tool

func init() {
	var err error
	Packages, BaseTools, err = parsePackages(packagesTxt)
	if err != nil {
		panic(err)
	}
}

// parsePackages reads lines of PACKAGE PROBE [demo]; # starts a comment.
func parsePackages(text string) (all, demo []Tool, err error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			continue
		case len(f) < 2 || len(f) > 3 || (len(f) == 3 && f[2] != "demo"):
			return nil, nil, fmt.Errorf("lab/packages.txt:%d: want PACKAGE PROBE [demo], got %q", n, sc.Text())
		}
		t := Tool{Command: f[1], Package: f[0]}
		all = append(all, t)
		if len(f) == 3 {
			demo = append(demo, t)
		}
	}
	return all, demo, sc.Err()
}

// Present reports whether t's probe finds it installed.
func (t Tool) Present() bool {
	if filepath.IsAbs(t.Command) {
		m, _ := filepath.Glob(t.Command)
		return len(m) > 0
	}
	_, err := exec.LookPath(t.Command)
	return err == nil
}

// Missing returns the Debian packages of tools that are absent, sorted and
// without duplicates.
func Missing(tools ...Tool) []string {
	set := map[string]bool{}
	for _, t := range tools {
		if !t.Present() {
			set[t.Package] = true
		}
	}
	pkgs := make([]string, 0, len(set))
	for p := range set {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	return pkgs
}

// policyRCD is Debian's hook that decides whether installing a package may
// start its service (invoke-rc.d); exit status 101 says no.
const policyRCD = "/usr/sbin/policy-rc.d"

// InstallMissing installs, with apt-get, the packages providing whichever of
// tools are absent, writing apt's output to w. It does nothing when all are
// present. While it installs, no package may start its service (unless the
// machine has its own policy-rc.d), as test.sh does. Only the demo
// installs: tests never do.
func InstallMissing(ctx context.Context, w io.Writer, tools ...Tool) error {
	pkgs := Missing(tools...)
	if len(pkgs) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("missing packages %v and no apt-get to install them", pkgs)
	}
	fmt.Fprintf(w, "installing missing packages: %v\n", pkgs)
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = w, w
		return cmd.Run()
	}
	if err := run("update"); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	// pptpd, xl2tpd and strongSwan must not start as services in the root
	// namespace: the lab runs its own copies inside namespaces.
	if _, err := os.Stat(policyRCD); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(policyRCD, []byte("#!/bin/sh\n# passgate lab: no service starts while it installs packages\nexit 101\n"), 0o755); err == nil {
			defer os.Remove(policyRCD)
		}
	}
	if err := run(append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...); err != nil {
		return fmt.Errorf("apt-get install %v: %w", pkgs, err)
	}
	if still := Missing(tools...); len(still) > 0 {
		return fmt.Errorf("still missing after install: %v", still)
	}
	return nil
}
