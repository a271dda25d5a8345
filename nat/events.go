package nat

// EventKind names something the engine tells people about. The kinds
// are the helpers' (IPsec's "esp_ambiguous", ...), added with
// NewEventKind.
type EventKind uint8

// maxEventKinds bounds the kinds registered.
const maxEventKinds = 32

// eventKinds are the registered kinds' names and renderers, written while
// the helpers' packages initialise and never after.
var eventKinds [maxEventKinds]struct {
	name   string
	render func(Event) string
}

// numEventKinds is one more than the last kind registered (0 is none).
var numEventKinds = EventKind(1)

// NewEventKind adds a kind of event, named name (the API's "kind") and
// rendered for people by render. Call it from a package-level variable's
// initialiser, never later; name must be new.
func NewEventKind(name string, render func(Event) string) EventKind {
	for k := EventKind(1); k < numEventKinds; k++ {
		if eventKinds[k].name == name {
			panic("nat: event kind " + name + " registered twice")
		}
	}
	if numEventKinds == maxEventKinds {
		panic("nat: too many event kinds")
	}
	k := numEventKinds
	eventKinds[k].name, eventKinds[k].render = name, render
	numEventKinds++
	return k
}

func (k EventKind) String() string {
	if k < numEventKinds && eventKinds[k].name != "" {
		return eventKinds[k].name
	}
	return "unknown"
}

// Event is something that happened on the packet path which a person
// should be able to read: what was blocked and why, which guess the engine
// made. It holds numbers only, so recording one never allocates; Message
// renders it.
type Event struct {
	At   Time
	Kind EventKind
	Host [4]byte // the LAN host concerned (zero if none)
	Peer [4]byte // the remote peer
	A, B uint64  // kind-specific ids
	// Suppressed counts events of this kind dropped by the rate limit
	// since the previous one recorded.
	Suppressed uint64
}

// Message says what the event means, for logs and the admin page: its
// kind's renderer's words.
func (ev Event) Message() string {
	if ev.Kind < numEventKinds && eventKinds[ev.Kind].render != nil {
		return eventKinds[ev.Kind].render(ev)
	}
	return ev.Kind.String()
}

const eventRing = 256

// events is a ring of recent events with a per-kind rate limit, so a flood
// of one kind cannot push out the rest or cost more than a counter.
type events struct {
	ring       [eventRing]Event
	n          uint64 // total recorded
	last       [maxEventKinds]Time
	seen       [maxEventKinds]bool
	suppressed [maxEventKinds]uint64
}

func (e *Engine) event(now Time, ev Event) {
	es := &e.events
	if es.seen[ev.Kind] && now-es.last[ev.Kind] < sec {
		es.suppressed[ev.Kind]++
		return
	}
	es.seen[ev.Kind] = true
	es.last[ev.Kind] = now
	ev.At = now
	ev.Suppressed = es.suppressed[ev.Kind]
	es.suppressed[ev.Kind] = 0
	es.ring[es.n%eventRing] = ev
	es.n++
}

// Events returns the events recorded after sequence number since (0 for
// all that are kept), oldest first, and the sequence number to pass next
// time.
func (e *Engine) Events(since uint64) ([]Event, uint64) {
	es := &e.events
	from := since
	if es.n > eventRing && from < es.n-eventRing {
		from = es.n - eventRing
	}
	out := make([]Event, 0, es.n-from)
	for i := from; i < es.n; i++ {
		out = append(out, es.ring[i%eventRing])
	}
	return out, es.n
}
