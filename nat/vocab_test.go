package nat

import (
	"slices"
	"testing"
)

// Helpers add drop reasons and event kinds by name; the names are what
// counters and the API show, so one cannot be taken twice.
// Registered once for the process, as helpers register theirs, so that
// go test -count=N runs the test again without registering twice.
var (
	testOnlyDrop  = NewDropReason("test_only_drop")
	testOnlyEvent = NewEventKind("test_only_event", func(ev Event) string { return "said " + ev.Kind.String() })
)

func TestRegisteredVocabulary(t *testing.T) {
	r := testOnlyDrop
	if r.String() != "test_only_drop" || !slices.Contains(DropReasons(), r) || r < numCoreDrops {
		t.Fatalf("registered reason %d is %q", r, r)
	}
	k := testOnlyEvent
	if (Event{Kind: k}).Message() != "said test_only_event" || EventKind(0).String() != "unknown" {
		t.Fatalf("event kind %d renders %q", k, Event{Kind: k}.Message())
	}
	for _, dup := range []func(){
		func() { NewDropReason("malformed") },
		func() { NewEventKind("test_only_event", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("a name registered twice was accepted")
				}
			}()
			dup()
		}()
	}
}
