package config

import (
	"reflect"
	"testing"

	"passgate/nat"
)

// FuzzParse feeds arbitrary bytes to the configuration parser and
// validator, as a file, the REST API or a SIGHUP reload would. A refusal
// must name a field for each problem; what is accepted must reach the
// engine unrefused and survive a save: Marshal, Parse and Validate again
// give the same settings, so a daemon that saved it restarts with it.
func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"}}`))
	f.Add([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},` +
		`"nat":{"timeouts":{"tcp_opening":"5m","tcp_closing":"6m","tcp_transitory":"4m"}}}`))
	// Malformed: tcp_opening empty (left out: tcp_transitory's) and
	// tcp_closing below the RFC minimum, refused naming it.
	f.Add([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},` +
		`"nat":{"timeouts":{"tcp_opening":"","tcp_closing":"1s"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			checkNamed(t, err)
			return
		}
		s, err := c.Validate()
		if err != nil {
			checkNamed(t, err)
			return
		}
		if s.NAT.MaxFlows <= 1<<16 {
			if _, err := nat.New(s.NAT, 0); err != nil {
				t.Fatalf("validated, then refused by the engine: %v\n%s", err, data)
			}
		}
		saved, err := c.Marshal()
		if err != nil {
			t.Fatalf("validated, then not marshalled: %v", err)
		}
		c2, err := Parse(saved)
		if err != nil {
			t.Fatalf("a saved configuration does not parse: %v\n%s", err, saved)
		}
		s2, err := c2.Validate()
		if err != nil {
			t.Fatalf("a saved configuration does not validate: %v\n%s", err, saved)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Fatalf("settings changed across a save\nbefore %+v\nafter  %+v\n%s", s, s2, saved)
		}
	})
}

// checkNamed fails unless err lists problems that each name a field (or a
// line and column).
func checkNamed(t *testing.T, err error) {
	t.Helper()
	es := AsErrors(err)
	if len(es) == 0 {
		t.Fatalf("error without a field: %v", err)
	}
	for _, e := range es {
		if e.Field == "" || e.Msg == "" {
			t.Fatalf("error %+v names no field or says nothing (%v)", e, err)
		}
	}
}
