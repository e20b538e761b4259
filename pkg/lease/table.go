// Package lease keeps a team's shard leases and checkpoints in its lease
// table: who reads which shard, until when, and up to where it has been
// confirmed. It fences every lease (a pod stops working a shard before its
// lease could pass to another pod), balances shards across the team's pods,
// writes checkpoints only while the lease is held, and carries each pod's
// heartbeat.
//
// The table keeps the KCL's schema (ShardID, AssignedTo, LeaseTimeout,
// Checkpoint, ParentShardId), so tables written by earlier versions keep
// working. Rows whose key is not a shard id (heartbeats, the team's first
// start) are never read by the KCL, which only asks for the shards it lists.
package lease

import (
	"context"
	"errors"
)

// ShardEnd is the checkpoint of a shard read to its end: its children may
// start.
const ShardEnd = "SHARD_END"

// Row is one row of the lease table.
type Row struct {
	Key string
	// Owner and Timeout are the lease: who holds it and until when
	// (RFC 3339, as written; conditions compare it verbatim).
	Owner, Timeout string
	// Checkpoint is the sequence number of the last record confirmed, or
	// ShardEnd.
	Checkpoint string
	// Parent is the shard's parent, as the KCL records it.
	Parent string
	// Numbers is a heartbeat's payload.
	Numbers map[string]float64
}

// ErrConflict is a conditional write that found the row changed: another
// pod took the lease or wrote first.
var ErrConflict = errors.New("lease table row changed")

// Table is the lease table: DynamoDB in production (NewDynamoTable), memory
// in tests (NewMemTable).
type Table interface {
	// Ensure creates the table when it does not exist.
	Ensure(ctx context.Context) error
	// Get reads one row (consistently); ok is false when there is none.
	Get(ctx context.Context, key string) (row Row, ok bool, err error)
	// Scan reads every row (consistently).
	Scan(ctx context.Context) ([]Row, error)
	// Take sets the row's lease to next if its lease is still prev (an
	// empty prev.Owner: the row has no owner or does not exist), and its
	// parent when given; ErrConflict otherwise. The checkpoint is kept.
	Take(ctx context.Context, key string, prev, next Lease, parent string) error
	// SetCheckpoint sets the checkpoint if owner holds the row's lease;
	// ErrConflict otherwise.
	SetCheckpoint(ctx context.Context, key, owner, checkpoint string) error
	// Release removes the row's owner if it is owner; ErrConflict
	// otherwise.
	Release(ctx context.Context, key, owner string) error
	// Put writes a row whole, unconditionally.
	Put(ctx context.Context, row Row) error
	// PutIfAbsent writes a row whole if there is none; ErrConflict
	// otherwise.
	PutIfAbsent(ctx context.Context, row Row) error
	// Delete removes a row.
	Delete(ctx context.Context, key string) error
}

// Lease is who holds a shard until when.
type Lease struct {
	Owner, Timeout string
}
