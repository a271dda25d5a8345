package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/renameio/v2"
)

// LastGoodSuffix names the copy of the previous good configuration that a
// save keeps next to the file: FILE.last-good.
const LastGoodSuffix = ".last-good"

// Store keeps the configuration file, the single source of truth of the
// running configuration. A save writes a temporary file in the same
// directory, fsyncs it, renames it over the file and fsyncs the directory,
// so a crash at any moment leaves either the old or the new file, never a
// mix; the file it replaces, if good, is kept as FILE.last-good the same
// way. Loading refuses a broken file with errors naming the fields.
type Store struct {
	path string
	// Check decides whether a configuration is good: a file that fails it
	// is refused by Load and never saved. Default: Validate on a copy.
	// passgate run sets it to validate with the command-line overrides.
	Check func(*Config) error
	// Logger reports a start from the last good copy; default slog.Default().
	Logger *slog.Logger

	mu sync.Mutex // one save at a time
	// undo is what the last Save replaced, for Revert.
	undo struct {
		ok      bool
		existed bool
		data    []byte
	}
}

// NewStore makes a store for the file at path. It does not touch the disk.
func NewStore(path string) *Store {
	return &Store{path: path}
}

// Path is the configuration file.
func (s *Store) Path() string { return s.path }

// LastGoodPath is the copy of the previous good file.
func (s *Store) LastGoodPath() string { return s.path + LastGoodSuffix }

func (s *Store) check(c *Config) error {
	if s.Check != nil {
		return s.Check(c)
	}
	cc := c.Clone()
	_, err := cc.Validate()
	return err
}

func (s *Store) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Load reads, parses and checks the file. A broken file is an error: the
// parse or validation errors (config.Errors, naming the fields), wrapped
// with the file's name.
func (s *Store) Load() (*Config, error) {
	c, _, err := s.loadFile(s.path)
	return c, err
}

func (s *Store) loadFile(path string) (*Config, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err == nil {
		err = s.check(c)
	}
	if err != nil {
		return nil, data, fmt.Errorf("config %s: %w", path, err)
	}
	return c, data, nil
}

// LoadForStart is Load for a daemon starting: if the file is broken (or
// gone) and FILE.last-good is good, it returns the last good configuration,
// logs loudly that it did, and reports the file's problem in fileErr; the
// broken file stays as it is for a person to look at (the next save
// replaces it). If the file is good it is also made the last good copy.
// err is set only when neither is usable; it is the file's error.
func (s *Store) LoadForStart() (c *Config, fileErr, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeStaleTemps()
	c, data, ferr := s.loadFile(s.path)
	if ferr == nil {
		if err := s.keepLastGood(data); err != nil {
			s.logger().Warn("could not refresh the last good copy of the configuration", "file", s.LastGoodPath(), "err", err)
		}
		return c, nil, nil
	}
	lg, _, lerr := s.loadFile(s.LastGoodPath())
	if lerr != nil {
		return nil, ferr, ferr
	}
	log := s.logger()
	log.Error("CONFIGURATION FILE IS BROKEN: starting with the last good copy instead; fix the file or save from the admin page",
		"file", s.path, "last_good", s.LastGoodPath())
	for _, e := range AsErrors(ferr) {
		log.Error("configuration file error", "file", s.path, "error", e.Error())
	}
	if len(AsErrors(ferr)) == 0 {
		log.Error("configuration file error", "file", s.path, "error", ferr)
	}
	return lg, ferr, nil
}

// Save checks c and writes it atomically. The file it replaces, if it is
// good, becomes FILE.last-good first. If c is refused (config.Errors), or
// writing fails, the file on disk is the one that was there.
func (s *Store) Save(c *Config) error {
	if err := s.check(c); err != nil {
		return err
	}
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.undo.ok = false
	old, err := os.ReadFile(s.path)
	if err == nil {
		if bytes.Equal(old, data) {
			s.undo.ok, s.undo.existed, s.undo.data = true, true, old
			return nil
		}
		if oc, perr := Parse(old); perr == nil && s.check(oc) == nil {
			if err := s.keepLastGood(old); err != nil {
				return fmt.Errorf("config: keeping the last good copy: %w", err)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("config: %w", err)
	}
	if err := writeAtomic(s.path, data, 0o600); err != nil {
		return fmt.Errorf("config: saving %s: %w", s.path, err)
	}
	s.undo.ok, s.undo.existed, s.undo.data = true, old != nil, old
	return nil
}

// Revert puts back, atomically, the file the last Save replaced, byte for
// byte (or removes the file if there was none): for a change saved and
// then refused by the running gateway.
func (s *Store) Revert() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.undo.ok {
		return errors.New("config: nothing to revert")
	}
	s.undo.ok = false
	if !s.undo.existed {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("config: %w", err)
		}
		return SyncDir(filepath.Dir(s.path))
	}
	if err := writeAtomic(s.path, s.undo.data, 0o600); err != nil {
		return fmt.Errorf("config: reverting %s: %w", s.path, err)
	}
	return nil
}

// keepLastGood writes data, a good configuration, as FILE.last-good unless
// it is that already.
func (s *Store) keepLastGood(data []byte) error {
	if cur, err := os.ReadFile(s.LastGoodPath()); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	return writeAtomic(s.LastGoodPath(), data, 0o600)
}

// writeAtomic is renameio's temporary file in the same directory, fsync and
// rename, followed by an fsync of the directory so the rename itself is on
// disk. An existing file's permissions are kept.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := renameio.WriteFile(path, data, perm, renameio.WithTempDir(dir)); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, so a rename in it is on disk; its error is
// the caller's to handle.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// removeStaleTemps deletes the temporary files of saves that were killed
// before their rename (renameio names them "." + base + digits).
func (s *Store) removeStaleTemps() {
	dir := filepath.Dir(s.path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, base := range []string{filepath.Base(s.path), filepath.Base(s.LastGoodPath())} {
		prefix := "." + base
		for _, e := range ents {
			rest, ok := strings.CutPrefix(e.Name(), prefix)
			if !ok || rest == "" || !e.Type().IsRegular() || strings.Trim(rest, "0123456789") != "" {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				s.logger().Info("removed the temporary file of an interrupted save", "file", filepath.Join(dir, e.Name()))
			}
		}
	}
}
