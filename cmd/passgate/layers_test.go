package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLayers: no package imports one above it. The engine and the packet
// path (packet, conntrack, nat, alg, pppoe, dataplane) know nothing of the
// configuration file, the API or the admin plane; the API's users (admin,
// its web pages and the lab) read the wire types of package control, never
// the engine's or the router's own; nothing imports the binary. Checked on
// the source, non-test files (and the lab's test files, where the lab's
// tests decode what passgate answers, and admin's, engine's and drivers'
// test files for the rules marked so).
func TestLayers(t *testing.T) {
	type rule struct {
		pkgs      []string // import paths, "x/..." for x and below
		forbidden []string
		tests     bool // the rule holds for _test.go files too
	}
	drivers := []string{"passgate/dataplane/port/...", "passgate/dataplane/afpacket/...", "passgate/dataplane/afxdp/..."}
	engine := []string{"passgate/packet/...", "passgate/conntrack/...", "passgate/nat/...", "passgate/alg/...", "passgate/pppoe/...", "passgate/dataplane/..."}
	rules := []rule{
		{engine, []string{"passgate/config/...", "passgate/control/...", "passgate/admin/...", "passgate/lab/...", "passgate/cmd/..."}, false},
		{[]string{"passgate/pppoe/...", "passgate/packet/...", "passgate/conntrack/...", "passgate/nat/...", "passgate/alg/..."}, []string{"passgate/dataplane/..."}, false},
		{[]string{"passgate/config/..."}, []string{"passgate/dataplane/...", "passgate/control/...", "passgate/admin/...", "passgate/lab/...", "passgate/cmd/..."}, false},
		{[]string{"passgate/control/..."}, []string{"passgate/admin/...", "passgate/lab/...", "passgate/cmd/..."}, false},
		{[]string{"passgate/admin/..."}, []string{"passgate/nat/...", "passgate/dataplane/...", "passgate/cmd/..."}, false},
		{[]string{"passgate/lab/..."}, []string{"passgate/nat/...", "passgate/dataplane/...", "passgate/admin/..."}, true},
		// Port mapping (PCP, NAT-PMP, UPnP) sits on the engine: it asks
		// nat for mappings, cmd/passgate wires it to the router and the
		// API. The engine knows nothing of it, tests included.
		{[]string{"passgate/portmap/..."}, []string{"passgate/config/...", "passgate/control/...", "passgate/admin/...", "passgate/lab/...", "passgate/cmd/..."}, false},
		{engine, []string{"passgate/portmap/..."}, true},
		// The drivers (and the port interface between them and the
		// router) move raw frames: they sit below the router and know no
		// protocol, NAT or other driver; tests included.
		{drivers, []string{"passgate/dataplane/router/...", "passgate/dataplane/link/...", "passgate/packet/...", "passgate/conntrack/...", "passgate/nat/...", "passgate/alg/...", "passgate/pppoe/...", "passgate/portmap/..."}, true},
		{[]string{"passgate/dataplane/port/..."}, []string{"passgate/dataplane/afpacket/...", "passgate/dataplane/afxdp/..."}, true},
		{[]string{"passgate/dataplane/afpacket/..."}, []string{"passgate/dataplane/afxdp/..."}, true},
		{[]string{"passgate/dataplane/afxdp/..."}, []string{"passgate/dataplane/afpacket/..."}, true},
		// admin reads the gateway through control's wire types and
		// config, tests included (they compare what was applied through
		// config.Settings, never nat's own constants).
		{[]string{"passgate/admin/..."}, []string{"passgate/nat/...", "passgate/dataplane/...", "passgate/portmap/...", "passgate/conntrack/...", "passgate/packet/...", "passgate/pppoe/..."}, true},
	}
	match := func(pattern, path string) bool {
		if base, ok := strings.CutSuffix(pattern, "/..."); ok {
			return path == base || strings.HasPrefix(path, base+"/")
		}
		return path == pattern
	}
	matchAny := func(patterns []string, path string) bool {
		for _, p := range patterns {
			if match(p, path) {
				return true
			}
		}
		return false
	}
	root := filepath.Join("..", "..")
	checked := 0
	err := filepath.WalkDir(root, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && file != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(file, ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(file))
		if err != nil {
			return err
		}
		pkg := "passgate/" + filepath.ToSlash(rel)
		isTest := strings.HasSuffix(file, "_test.go")
		src, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(path, "passgate/") {
				continue
			}
			if match("passgate/cmd/...", path) {
				t.Errorf("%s imports %s: nothing imports the binary", file, path)
			}
			for _, r := range rules {
				if (isTest && !r.tests) || !matchAny(r.pkgs, pkg) || !matchAny(r.forbidden, path) {
					continue
				}
				t.Errorf("%s (%s) imports %s, which it must not", file, pkg, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked %d files; is the module root %s?", checked, root)
	}
}
