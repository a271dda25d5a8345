package router

import "testing"

// TestAutoDriver: auto goes by the drivers ETHTOOL_GDRVINFO names, not
// by the interfaces' names: a veth called eth0 takes AF_PACKET, an
// ixgbe port called veth0 tries AF_XDP, and AF_XDP stays only where both
// interfaces run the program natively.
func TestAutoDriver(t *testing.T) {
	for _, c := range []struct {
		names, drivers [2]string
		want           string
	}{
		{[2]string{"lan0", "wan0"}, [2]string{"veth", "veth"}, "lan0 is a veth"},
		{[2]string{"eth0", "eth1"}, [2]string{"ixgbe", "veth"}, "eth1 is a veth"},
		{[2]string{"veth0", "veth1"}, [2]string{"ixgbe", "mlx5_core"}, ""},
		{[2]string{"vethlan", "vethwan"}, [2]string{"", ""}, ""}, // unreadable: the modes decide
		{[2]string{"br0", "eth0"}, [2]string{"bridge", "igb"}, ""},
	} {
		if got := autoAFPacket(c.names, c.drivers); got != c.want {
			t.Errorf("%v with drivers %v: %q, want %q", c.names, c.drivers, got, c.want)
		}
	}
	for _, c := range []struct {
		modes [2]string
		ok    bool
	}{
		{[2]string{"native", "native"}, true},
		{[2]string{"native", "generic"}, false},
		{[2]string{"generic", "native"}, false},
		{[2]string{"generic", "generic"}, false},
	} {
		if err := autoXDPModes(c.modes); (err == nil) != c.ok {
			t.Errorf("modes %v: %v, want ok %v", c.modes, err, c.ok)
		}
	}
}
