package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
)

// Python is the interpreter the lab uses: Debian's, which has scapy; a
// python3 earlier on PATH (pyenv, venv) may lack it.
const Python = "/usr/bin/python3"

// Tool is a command the lab needs and the Debian package that provides it.
type Tool struct {
	Command string // a name looked up on PATH, or an absolute path (any file: a plugin counts)
	Package string
}

// BaseTools are what lab.sh and `passgate demo` need.
var BaseTools = []Tool{
	{"ip", "iproute2"},
	{"nft", "nftables"},
	{"ethtool", "ethtool"},
	{"flock", "util-linux"},
	{"sysctl", "procps"},
	{"ping", "iputils-ping"},
	{"curl", "curl"},
	{"iperf3", "iperf3"},
	{Python, "python3"},
}

// TestTools are what the integration tests need beyond BaseTools.
var TestTools = []Tool{
	{"traceroute", "traceroute"},
	{"tcpdump", "tcpdump"},
	{"socat", "socat"},
}

// Missing returns the Debian packages providing the tools that are absent,
// sorted and without duplicates.
func Missing(tools ...Tool) []string {
	set := map[string]bool{}
	for _, t := range tools {
		var err error
		if filepath.IsAbs(t.Command) {
			_, err = os.Stat(t.Command)
		} else {
			_, err = exec.LookPath(t.Command)
		}
		if err != nil {
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
// machine has its own policy-rc.d), as .ci/run does.
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
