package config

import "testing"

// passthrough.pppoe switches the PPPoE relay: off when absent, as on
// routers that have one.
func TestPPPoESwitch(t *testing.T) {
	for _, tc := range []struct {
		json string
		on   bool
	}{
		{`{}`, false},
		{`{"pppoe":false}`, false},
		{`{"pppoe":true}`, true},
	} {
		c, err := Parse([]byte(`{"lan":{"interface":"lan0","address":"192.168.50.1/24"},"wan":{"interface":"wan0","address":"203.0.113.1/24"},"passthrough":` + tc.json + `}`))
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Validate()
		if err != nil {
			t.Fatal(err)
		}
		if s.PPPoERelay != tc.on {
			t.Errorf("%s: settings %v; want %v", tc.json, s.PPPoERelay, tc.on)
		}
		d := c.Clone()
		if c.Passthrough.PPPoE != nil && d.Passthrough.PPPoE == c.Passthrough.PPPoE {
			t.Errorf("%s: Clone shares the pppoe switch", tc.json)
		}
	}
	if _, err := Parse([]byte(`{"passthrough":{"pppoe":"yes"}}`)); err == nil {
		t.Error(`"pppoe":"yes" accepted`)
	}
}
