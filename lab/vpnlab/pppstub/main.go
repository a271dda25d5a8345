// Command pppstub is the lab's pppd stand-in (package passgate/lab/pppstub)
// as a program of its own, for the PPTP and L2TP harnesses.
package main

import (
	"fmt"
	"os"

	"passgate/lab/pppstub"
)

func main() {
	if err := pppstub.Main(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pppstub:", err)
		os.Exit(1)
	}
}
