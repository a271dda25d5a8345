package lab

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPackagesList checks the one list of Debian packages (packages.txt)
// as the Go code reads it, and that the scripts install from it alone:
// test.sh and bench/lab.sh through packages.sh, .ci/run through test.sh.
func TestPackagesList(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Packages {
		if seen[p.Package] {
			t.Errorf("%s listed twice", p.Package)
		}
		seen[p.Package] = true
	}
	// What the lab tests start: strongSwan, pptpd, xl2tpd, tshark, chromium...
	for _, want := range []string{"iproute2", "strongswan-charon", "pptpd", "pptp-linux", "xl2tpd", "tshark", "chromium", "sip-tester", "pppoe", "netsniff-ng"} {
		if !seen[want] {
			t.Errorf("packages.txt lacks %s", want)
		}
	}
	var demo []string
	for _, b := range BaseTools {
		demo = append(demo, b.Package)
		if !slices.Contains(Packages, b) {
			t.Errorf("demo package %v not in Packages", b)
		}
	}
	if got := strings.Join(demo, " "); got != "iproute2 nftables ethtool util-linux procps iputils-ping curl iperf3 socat python3 "+
		"python3-scapy strongswan-charon strongswan-swanctl strongswan-libcharon libcharon-extra-plugins libstrongswan-standard-plugins pptpd pptp-linux" {
		t.Errorf("demo packages: %s", got)
	}

	read := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if !strings.Contains(read("packages.sh"), "/packages.txt\"") {
		t.Error("packages.sh does not read packages.txt")
	}
	for _, f := range []string{"../test.sh", "../bench/lab.sh"} {
		s := read(f)
		if !strings.Contains(s, "source \"$ROOT/lab/packages.sh\"") && !strings.Contains(s, "source lab/packages.sh") || !strings.Contains(s, "\npg_install") || strings.Contains(s, "apt-get install") {
			t.Errorf("%s does not install with lab/packages.sh alone", f)
		}
	}
	if ci := read("../.ci/run"); strings.Contains(ci, "apt-get") || !strings.Contains(ci, "\n./test.sh\n") {
		t.Error(".ci/run should be ./test.sh, which installs lab/packages.txt")
	}
}

func TestParsePackages(t *testing.T) {
	all, demo, err := parsePackages("# comment\n\npkg-a  cmd-a  demo\npkg-b /x/*/y  # trailing comment\n")
	want := []Tool{{"cmd-a", "pkg-a"}, {"/x/*/y", "pkg-b"}}
	if err != nil || !slices.Equal(all, want) || !slices.Equal(demo, want[:1]) {
		t.Fatalf("all %v demo %v err %v", all, demo, err)
	}
	for _, bad := range []string{
		"lonely\n",              // no probe
		"pkg cmd demo extra\n",  // too many fields
		"pkg cmd test\n",        // a mark other than demo
		"ok cmd\npkg cmd lab\n", // line 2 bad
	} {
		if _, _, err := parsePackages(bad); err == nil || !strings.Contains(err.Error(), "packages.txt:") {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

func TestToolPresent(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "lib", "x.typelib"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	present := Tool{Command: filepath.Join(dir, "*", "lib", "x.typelib"), Package: "p"} // a file, not executable
	absent := Tool{Command: filepath.Join(dir, "*", "lib", "y.typelib"), Package: "q"}
	nocmd := Tool{Command: "passgate-no-such-command", Package: "r"}
	onPath := Tool{Command: "sh", Package: "dash"}
	if !present.Present() || absent.Present() || nocmd.Present() || !onPath.Present() {
		t.Errorf("present %v absent %v nocmd %v sh %v", present.Present(), absent.Present(), nocmd.Present(), onPath.Present())
	}
	if got := Missing(present, absent, nocmd, absent); !slices.Equal(got, []string{"q", "r"}) {
		t.Errorf("Missing: %v", got)
	}
}
