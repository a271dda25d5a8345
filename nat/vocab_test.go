package nat

import "testing"

// Helpers add drop reasons and event kinds by name; the names are what
// counters and the API show, so one cannot be taken twice.
func TestRegisteredVocabulary(t *testing.T) {
	r := NewDropReason("test_only_drop")
	if r.String() != "test_only_drop" || DropReasons()[len(DropReasons())-1] != r || r < numCoreDrops {
		t.Fatalf("registered reason %d is %q", r, r)
	}
	k := NewEventKind("test_only_event", func(ev Event) string { return "said " + ev.Kind.String() })
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
