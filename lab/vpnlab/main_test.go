//go:build lab

package vpnlab

import (
	"testing"

	"passgate/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }
