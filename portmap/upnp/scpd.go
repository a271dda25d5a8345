package upnp

import "strings"

// The service descriptions (SCPD): each action with its arguments and the
// state variables they relate to, as the specs list them. Some clients
// read them before calling.

type scpdArg struct{ name, dir, rel string }

type scpdAction struct {
	name string
	v2   bool // WANIPConnection:2 only
	args []scpdArg
}

func in(name, rel string) scpdArg  { return scpdArg{name, "in", rel} }
func out(name, rel string) scpdArg { return scpdArg{name, "out", rel} }

var mappingIn = []scpdArg{
	in("NewRemoteHost", "RemoteHost"), in("NewExternalPort", "ExternalPort"), in("NewProtocol", "PortMappingProtocol"),
	in("NewInternalPort", "InternalPort"), in("NewInternalClient", "InternalClient"), in("NewEnabled", "PortMappingEnabled"),
	in("NewPortMappingDescription", "PortMappingDescription"), in("NewLeaseDuration", "PortMappingLeaseDuration"),
}

var entryOut = []scpdArg{
	out("NewInternalPort", "InternalPort"), out("NewInternalClient", "InternalClient"), out("NewEnabled", "PortMappingEnabled"),
	out("NewPortMappingDescription", "PortMappingDescription"), out("NewLeaseDuration", "PortMappingLeaseDuration"),
}

var ipConnActions = []scpdAction{
	{"GetConnectionTypeInfo", false, []scpdArg{out("NewConnectionType", "ConnectionType"), out("NewPossibleConnectionTypes", "PossibleConnectionTypes")}},
	{"GetStatusInfo", false, []scpdArg{out("NewConnectionStatus", "ConnectionStatus"), out("NewLastConnectionError", "LastConnectionError"), out("NewUptime", "Uptime")}},
	{"GetExternalIPAddress", false, []scpdArg{out("NewExternalIPAddress", "ExternalIPAddress")}},
	{"AddPortMapping", false, mappingIn},
	{"AddAnyPortMapping", true, append(append([]scpdArg{}, mappingIn...), out("NewReservedPort", "ExternalPort"))},
	{"DeletePortMapping", false, []scpdArg{in("NewRemoteHost", "RemoteHost"), in("NewExternalPort", "ExternalPort"), in("NewProtocol", "PortMappingProtocol")}},
	{"DeletePortMappingRange", true, []scpdArg{in("NewStartPort", "ExternalPort"), in("NewEndPort", "ExternalPort"), in("NewProtocol", "PortMappingProtocol"), in("NewManage", "A_ARG_TYPE_Manage")}},
	{"GetSpecificPortMappingEntry", false, append([]scpdArg{in("NewRemoteHost", "RemoteHost"), in("NewExternalPort", "ExternalPort"), in("NewProtocol", "PortMappingProtocol")}, entryOut...)},
	{"GetGenericPortMappingEntry", false, append([]scpdArg{in("NewPortMappingIndex", "PortMappingNumberOfEntries"),
		out("NewRemoteHost", "RemoteHost"), out("NewExternalPort", "ExternalPort"), out("NewProtocol", "PortMappingProtocol")}, entryOut...)},
	{"GetListOfPortMappings", true, []scpdArg{in("NewStartPort", "ExternalPort"), in("NewEndPort", "ExternalPort"), in("NewProtocol", "PortMappingProtocol"),
		in("NewManage", "A_ARG_TYPE_Manage"), in("NewNumberOfPorts", "PortMappingNumberOfEntries"), out("NewPortListing", "A_ARG_TYPE_PortListing")}},
}

var ipConnVars = [][2]string{
	{"ConnectionType", "string"}, {"PossibleConnectionTypes", "string"}, {"ConnectionStatus", "string"}, {"Uptime", "ui4"},
	{"LastConnectionError", "string"}, {"ExternalIPAddress", "string"}, {"RemoteHost", "string"}, {"ExternalPort", "ui2"},
	{"InternalPort", "ui2"}, {"PortMappingProtocol", "string"}, {"InternalClient", "string"}, {"PortMappingDescription", "string"},
	{"PortMappingEnabled", "boolean"}, {"PortMappingLeaseDuration", "ui4"}, {"PortMappingNumberOfEntries", "ui2"},
	{"A_ARG_TYPE_Manage", "boolean"}, {"A_ARG_TYPE_PortListing", "string"},
}

var cifActions = []scpdAction{
	{"GetCommonLinkProperties", false, []scpdArg{out("NewWANAccessType", "WANAccessType"), out("NewLayer1UpstreamMaxBitRate", "Layer1UpstreamMaxBitRate"),
		out("NewLayer1DownstreamMaxBitRate", "Layer1DownstreamMaxBitRate"), out("NewPhysicalLinkStatus", "PhysicalLinkStatus")}},
	{"GetTotalBytesSent", false, []scpdArg{out("NewTotalBytesSent", "TotalBytesSent")}},
	{"GetTotalBytesReceived", false, []scpdArg{out("NewTotalBytesReceived", "TotalBytesReceived")}},
	{"GetTotalPacketsSent", false, []scpdArg{out("NewTotalPacketsSent", "TotalPacketsSent")}},
	{"GetTotalPacketsReceived", false, []scpdArg{out("NewTotalPacketsReceived", "TotalPacketsReceived")}},
}

var cifVars = [][2]string{
	{"WANAccessType", "string"}, {"Layer1UpstreamMaxBitRate", "ui4"}, {"Layer1DownstreamMaxBitRate", "ui4"}, {"PhysicalLinkStatus", "string"},
	{"TotalBytesSent", "ui4"}, {"TotalBytesReceived", "ui4"}, {"TotalPacketsSent", "ui4"}, {"TotalPacketsReceived", "ui4"},
}

// SCPD is the service description served at path: /WANIPConn1.xml,
// /WANIPConn2.xml or /WANCommonIFC.xml; nil for another path.
func SCPD(path string) []byte {
	actions, vars, v2 := cifActions, cifVars, false
	switch path {
	case "/WANIPConn1.xml":
		actions, vars = ipConnActions, ipConnVars
	case "/WANIPConn2.xml":
		actions, vars, v2 = ipConnActions, ipConnVars, true
	case "/WANCommonIFC.xml":
	default:
		return nil
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?>` + "\n" + `<scpd xmlns="urn:schemas-upnp-org:service-1-0"><specVersion><major>1</major><minor>0</minor></specVersion><actionList>`)
	for _, a := range actions {
		if a.v2 && !v2 {
			continue
		}
		b.WriteString("<action><name>" + a.name + "</name><argumentList>")
		for _, g := range a.args {
			b.WriteString("<argument><name>" + g.name + "</name><direction>" + g.dir + "</direction><relatedStateVariable>" + g.rel + "</relatedStateVariable></argument>")
		}
		b.WriteString("</argumentList></action>")
	}
	b.WriteString("</actionList><serviceStateTable>")
	for _, v := range vars {
		b.WriteString(`<stateVariable sendEvents="no"><name>` + v[0] + "</name><dataType>" + v[1] + "</dataType>")
		if v[0] == "PortMappingProtocol" {
			b.WriteString("<allowedValueList><allowedValue>TCP</allowedValue><allowedValue>UDP</allowedValue></allowedValueList>")
		}
		b.WriteString("</stateVariable>")
	}
	b.WriteString("</serviceStateTable></scpd>\n")
	return []byte(b.String())
}
