package offload

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// TCProgramName is the tc program's name (bpftool net shows it).
const TCProgramName = "passgate_tc"

// TCProgram is the tc program attached at one interface's ingress
// through tcx: established flows in flows are forwarded there, the rest
// goes on to the stack (and passgate's AF_PACKET sockets, bound to
// ETH_P_IP so that they see frames after tc ingress). Its bpf_link
// belongs to the process: the kernel detaches it when passgate exits,
// even by SIGKILL.
type TCProgram struct {
	prog *ebpf.Program
	link link.Link
}

// TCProgramSpec is the whole program: TCInstructions, a miss returning
// TC_ACT_OK.
func TCProgramSpec(flows, ids *ebpf.Map) *ebpf.ProgramSpec {
	is := TCInstructions(flows, ids)
	is = append(is, asm.Mov.Imm(asm.R0, tcActOK), asm.Return())
	return &ebpf.ProgramSpec{Name: TCProgramName, Type: ebpf.SchedCLS, License: "GPL", Instructions: is}
}

// AttachTC loads the program for flows and ids (NewIDMap's map) and
// attaches it at the ingress of the interface ifindex (iface names it in
// errors).
func AttachTC(iface string, ifindex int, flows, ids *ebpf.Map) (*TCProgram, error) {
	prog, err := ebpf.NewProgram(TCProgramSpec(flows, ids))
	if err != nil {
		return nil, fmt.Errorf("offload: tc program for %s: load: %w", iface, err)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		prog.Close()
		return nil, fmt.Errorf("offload: tc program for %s: attach (tcx ingress): %w", iface, err)
	}
	return &TCProgram{prog: prog, link: l}, nil
}

// Close detaches and unloads the program.
func (p *TCProgram) Close() error {
	if p == nil {
		return nil
	}
	return errors.Join(p.link.Close(), p.prog.Close())
}
