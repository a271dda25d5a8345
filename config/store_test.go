package config

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const storeChildEnv = "PASSGATE_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	// TestSaveSurvivesKill re-executes this binary as a process that saves
	// in a loop until it is killed.
	if path := os.Getenv(storeChildEnv); path != "" {
		storeChild(path)
		return
	}
	os.Exit(m.Run())
}

// crashConfigs are two valid configurations, large enough (a few hundred
// KiB) that a save takes several writes, and different everywhere.
func crashConfigs() [2]*Config {
	var out [2]*Config
	for i := range out {
		c := &Config{
			LAN: LAN{Interface: "lan0", Address: "192.168.50.1/24"},
			WAN: WAN{Interface: "wan0", Address: "203.0.113.1/24"},
		}
		for p := 0; p < 600; p++ {
			c.PortForwards = append(c.PortForwards, PortForward{
				Name:        fmt.Sprintf("rule-%d-of-config-%c-with-a-long-name", p, 'a'+i),
				Proto:       []string{"tcp", "udp"}[i],
				OutsidePort: PortSpec(fmt.Sprint(10000 + p)),
				Host:        fmt.Sprintf("192.168.50.%d", 10+i),
				InsidePort:  20000 + p,
			})
		}
		out[i] = c
	}
	return out
}

func storeChild(path string) {
	cs := crashConfigs()
	st := NewStore(path)
	for i := 0; ; i++ {
		start := time.Now()
		if err := st.Save(cs[i%2]); err != nil {
			fmt.Fprintln(os.Stderr, "save:", err)
			os.Exit(3)
		}
		if i == 0 {
			// The parent kills within the next few saves.
			fmt.Println(time.Since(start).Microseconds())
		}
	}
}

// TestSaveSurvivesKill runs saves in a child process and SIGKILLs it at
// random moments, over and over: the file on disk must always parse,
// validate, and be one of the two configurations whole; so must the last
// good copy.
func TestSaveSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passgate.json")
	cs := crashConfigs()
	var want [2][]byte
	for i, c := range cs {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		want[i] = b
	}
	if err := NewStore(path).Save(cs[1]); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const iterations = 100
	var leftovers, seen [2]int
	var saveTime time.Duration
	deadline := time.Now().Add(4 * time.Minute)
	for it := 0; it < iterations; it++ {
		if time.Now().After(deadline) {
			t.Fatalf("only %d iterations in the time allowed", it)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), storeChildEnv+"="+path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the child has saved once, then kill it somewhere in
		// its next saves.
		line, err := bufio.NewReader(out).ReadString('\n')
		var us int
		if err == nil {
			_, err = fmt.Sscan(line, &us)
		}
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			cancel()
			t.Fatalf("iteration %d: child: %q %v\n%s", it, line, err, stderr.String())
		}
		saveTime += time.Duration(us) * time.Microsecond
		time.Sleep(time.Duration(rand.IntN(3*us+1)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		go io.Copy(io.Discard, out)
		err = cmd.Wait()
		cancel()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("iteration %d: child did not die of SIGKILL: %v\n%s", it, err, stderr.String())
		}

		for _, p := range []string{path, path + LastGoodSuffix} {
			data, err := os.ReadFile(p)
			if err != nil {
				if p != path && os.IsNotExist(err) {
					continue
				}
				t.Fatalf("iteration %d: %v", it, err)
			}
			which := -1
			for i := range want {
				if bytes.Equal(data, want[i]) {
					which = i
				}
			}
			if which < 0 {
				t.Fatalf("iteration %d: %s is neither configuration (%d bytes)", it, p, len(data))
			}
			c, err := Parse(data)
			if err != nil {
				t.Fatalf("iteration %d: %s: %v", it, p, err)
			}
			if _, err := c.Validate(); err != nil {
				t.Fatalf("iteration %d: %s: %v", it, p, err)
			}
			if p == path {
				seen[which]++
			}
		}
		if n := countTemps(t, dir); n > 0 {
			leftovers[0]++
		}
		// A daemon starting now takes the file and clears the temporary
		// file of the interrupted save.
		st := NewStore(path)
		st.Logger = slog.New(slog.DiscardHandler)
		c, fileErr, err := st.LoadForStart()
		if err != nil || fileErr != nil || c == nil {
			t.Fatalf("iteration %d: LoadForStart: %v %v", it, fileErr, err)
		}
		if n := countTemps(t, dir); n > 0 {
			t.Fatalf("iteration %d: %d temporary files left after LoadForStart", it, n)
		}
	}
	t.Logf("%d kills within 3 saves (a save took %v on average); the file held config a %d times, b %d times; %d kills interrupted a write (temporary file left)",
		iterations, saveTime/iterations, seen[0], seen[1], leftovers[0])
}

func countTemps(t *testing.T, dir string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}

const goodDoc = `{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"}}`

func TestStoreSaveKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pg.json")
	st := NewStore(path)
	c, err := Parse([]byte(goodDoc))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(c); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	if _, err := os.Stat(st.LastGoodPath()); !os.IsNotExist(err) {
		t.Fatalf("last good after the first save: %v", err)
	}
	off := false
	c.Passthrough.PPTP = &off
	if err := st.Save(c); err != nil {
		t.Fatal(err)
	}
	if lg, _ := os.ReadFile(st.LastGoodPath()); !bytes.Equal(lg, first) {
		t.Fatalf("last good is not the previous file:\n%s", lg)
	}
	second, _ := os.ReadFile(path)
	if !strings.Contains(string(second), `"pptp": false`) {
		t.Fatalf("saved:\n%s", second)
	}
	// The saved form holds what was set, no defaults.
	if strings.Contains(string(second), "timeouts") || strings.Contains(string(second), "control_socket") {
		t.Fatalf("defaults written:\n%s", second)
	}
	loaded, err := st.Load()
	if err != nil || loaded.Passthrough.PPTP == nil || *loaded.Passthrough.PPTP {
		t.Fatalf("load: %+v %v", loaded, err)
	}

	// A bad configuration is refused, with field errors; nothing changes.
	bad := c.Clone()
	bad.PortForwards = []PortForward{{Name: "x", Proto: "tcp", OutsidePort: "70000", Host: "192.168.50.10"}}
	err = st.Save(&bad)
	if es := AsErrors(err); len(es) != 1 || es[0].Field != "port_forwards[0].outside_port" {
		t.Fatalf("bad save: %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, second) {
		t.Fatal("file changed by a refused save")
	}
	// A save over a broken file does not make the broken file "last good".
	os.WriteFile(path, []byte(`{"lan":`), 0o600)
	if err := st.Save(c); err != nil {
		t.Fatal(err)
	}
	if lg, _ := os.ReadFile(st.LastGoodPath()); !bytes.Equal(lg, first) {
		t.Fatalf("broken file kept as last good:\n%s", lg)
	}
}

func TestStoreLoadForStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pg.json")
	var logs bytes.Buffer
	st := NewStore(path)
	st.Logger = slog.New(slog.NewTextHandler(&logs, nil))

	// Neither file: the file's error.
	if _, _, err := st.LoadForStart(); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("no file: %v", err)
	}
	os.WriteFile(path, []byte(goodDoc), 0o600)
	c, fileErr, err := st.LoadForStart()
	if err != nil || fileErr != nil || c.LAN.Interface != "lan0" {
		t.Fatalf("good: %v %v", fileErr, err)
	}
	// A good file at start becomes the last good copy.
	if lg, _ := os.ReadFile(st.LastGoodPath()); string(lg) != goodDoc {
		t.Fatalf("last good %q", lg)
	}
	// Broken file, good last-good: start with last-good, loudly.
	os.WriteFile(path, []byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"workers":"many"}`), 0o600)
	c, fileErr, err = st.LoadForStart()
	if err != nil || c == nil || c.WAN.Interface != "wan0" {
		t.Fatalf("fallback: %v", err)
	}
	if es := AsErrors(fileErr); len(es) != 1 || es[0].Field != "workers" {
		t.Fatalf("file error: %v", fileErr)
	}
	if !strings.Contains(logs.String(), "CONFIGURATION FILE IS BROKEN") || !strings.Contains(logs.String(), "workers: expected a whole number") {
		t.Fatalf("not loud enough:\n%s", logs.String())
	}
	// The broken file stays for a person to read.
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "many") {
		t.Fatal("broken file replaced")
	}
	// Both broken: the file's error.
	os.WriteFile(st.LastGoodPath(), []byte(`{}`), 0o600)
	if _, _, err := st.LoadForStart(); AsErrors(err) == nil || AsErrors(err)[0].Field != "workers" {
		t.Fatalf("both broken: %v", err)
	}
	// Check decides what is good: here, command-line overrides make the
	// file's invalid value irrelevant.
	st.Check = func(c *Config) error {
		cc := c.Clone()
		cc.Workers = 0
		_, err := cc.Validate()
		return err
	}
	os.WriteFile(path, []byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"workers":-1}`), 0o600)
	if c, fileErr, err := st.LoadForStart(); err != nil || fileErr != nil || c.Workers != -1 {
		t.Fatalf("custom check: %v %v", fileErr, err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestDecodeWithPrefix(t *testing.T) {
	var pf PortForward
	err := Decode([]byte(`{"name":"web","proto":"tcp","outside_port":80,"host":"192.168.50.10","inside_port":"80"}`), &pf, "port_forwards[3]")
	if es := AsErrors(err); len(es) != 1 || es[0].Field != "port_forwards[3].inside_port" || !strings.Contains(es[0].Msg, "expected a whole number") {
		t.Fatalf("type error: %v", err)
	}
	err = Decode([]byte(`{"name":"web","port":80}`), &pf, "port_forwards[3]")
	if es := AsErrors(err); len(es) != 1 || es[0].Field != "port_forwards[3].port" || es[0].Msg != "unknown field" {
		t.Fatalf("unknown: %v", err)
	}
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	err = Decode([]byte(`{"enabled":"yes"}`), &body, "")
	if es := AsErrors(err); len(es) != 1 || es[0].Field != "enabled" {
		t.Fatalf("bool: %v", err)
	}
	if err := Decode([]byte(`{"enabled":true}`), &body, ""); err != nil || body.Enabled == nil || !*body.Enabled {
		t.Fatalf("good: %v", err)
	}
	if err := Decode([]byte(`{"enabled":true}`), body, ""); err == nil {
		t.Fatal("non-pointer accepted")
	}
}

func TestCloneIsDeep(t *testing.T) {
	c, _ := Parse([]byte(`{"passthrough":{"pptp":false},"port_forwards":[{"name":"a","proto":"tcp","outside_port":1,"host":"192.168.50.10"}]}`))
	d := c.Clone()
	*d.Passthrough.PPTP = true
	d.PortForwards[0].Name = "b"
	if *c.Passthrough.PPTP || c.PortForwards[0].Name != "a" {
		t.Fatal("clone shares memory")
	}
}

func TestAdminDefaults(t *testing.T) {
	c, _ := Parse([]byte(goodDoc))
	s, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if !s.Admin.Enabled || s.Admin.Listen.String() != "192.168.50.1:8080" {
		t.Fatalf("admin %+v", s.Admin)
	}
	c, _ = Parse([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"admin":{"enabled":false,"listen":"127.0.0.1:9090"}}`))
	s, err = c.Validate()
	if err != nil || s.Admin.Enabled || s.Admin.Listen.String() != "127.0.0.1:9090" {
		t.Fatalf("admin %+v %v", s.Admin, err)
	}
}
