package consumer

import "testing"

// TestShardSetRemoveKeepsSuccessor: the library can start a new processor
// for a shard before the old one is closed; closing the old one must not
// take the new one's state (its probes, metrics and status row) with it.
func TestShardSetRemoveKeepsSuccessor(t *testing.T) {
	s := &shardSet{shards: map[string]*shardState{}}
	old := s.add("shardId-000000000000", 10)
	cur := s.add("shardId-000000000000", 10)
	if s.remove("shardId-000000000000", old) {
		t.Error("removing the replaced state reported it removed the shard")
	}
	if got := s.states(); len(got) != 1 || got[0] != cur {
		t.Fatalf("states after removing the old one = %v, want the new one", got)
	}
	if !s.remove("shardId-000000000000", cur) || len(s.states()) != 0 {
		t.Error("removing the current state left the shard")
	}
}
