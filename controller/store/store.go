// Package store keeps the controller's state in an embedded bbolt
// database: the topology, every tunnel with its owner, request and tree,
// the multicast group memberships, and the service registrations. The
// controller writes here before it touches a switch, so after a crash it
// can put everything back. Writes are made durable in a write-ahead log
// and reach bbolt in batches (wal.go).
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/xlane/xlane/controller/te"
	"github.com/xlane/xlane/controller/tunnels"
)

var (
	bucketMeta = []byte("meta")
	// The id counter lives apart from the topology: every admission writes
	// it, and a bbolt write rewrites the whole leaf a key sits in — with the
	// topology of a large fabric (hundreds of KB) beside it, that was most
	// of each admission's synced write.
	bucketCounters = []byte("counters")
	bucketTunnels  = []byte("tunnels")
	bucketGroups   = []byte("groups")
	bucketServices = []byte("services")
	keyTopology    = []byte("topology")
	keyVersion     = []byte("version")
	keyNextID      = []byte("next_id")
)

const schemaVersion = "1"

// Store is a bbolt-backed tunnels.Store with a write-ahead log in front
// (wal.go).
type Store struct {
	mu      sync.Mutex
	db      *bolt.DB
	wal     *wal
	pending []op   // logged, not yet in db
	next    uint64 // the stored next_id, pending ops included
	broken  error  // the log failed in a way that leaves it unusable
}

// A checkpoint moves logged writes into bbolt after this many ops or log
// bytes: one bbolt commit for many Saves, and a log that replays fast.
const (
	checkpointOps   = 1024
	checkpointBytes = 8 << 20
)

var _ tunnels.Store = (*Store)(nil)

// Open opens (or creates) the database in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	path := filepath.Join(dir, "xlane.db")
	// The freelist is rebuilt from the pages at open instead of written
	// with every commit (it grows with the database and was a large part
	// of each admission's synced write), and kept as a map.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketCounters, bucketTunnels, bucketGroups, bucketServices} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		// Stores written before the counters bucket kept next_id in meta.
		if v := meta.Get(keyNextID); v != nil {
			if err := tx.Bucket(bucketCounters).Put(keyNextID, v); err != nil {
				return err
			}
			if err := meta.Delete(keyNextID); err != nil {
				return err
			}
		}
		switch v := meta.Get(keyVersion); {
		case v == nil:
			return meta.Put(keyVersion, []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q, this controller reads %q", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	w, records, err := openWAL(dir)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	st := &Store{db: db, wal: w}
	for _, ops := range records {
		st.pending = append(st.pending, ops...)
	}
	// Writes acknowledged before a crash go to the database now; replaying
	// them over a database that has them already (a crash between a
	// checkpoint's commit and the log's reset) changes nothing: every op
	// puts or deletes a whole value, and next_id only grows.
	if err := st.checkpoint(); err != nil {
		st.close()
		return nil, fmt.Errorf("store: replaying the write-ahead log: %w", err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketCounters).Get(keyNextID); len(v) == 8 {
			st.next = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		st.close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return st, nil
}

// Close moves what the log holds into the database and closes both.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.broken == nil {
		err = s.checkpoint()
	}
	return errors.Join(err, s.close())
}

func (s *Store) close() error { return errors.Join(s.wal.close(), s.db.Close()) }

// Topology returns the stored topology, or nil if none is stored.
func (s *Store) Topology() (*te.TopologySpec, error) {
	var spec *te.TopologySpec
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(keyTopology)
		if v == nil {
			return nil
		}
		spec = &te.TopologySpec{}
		return json.Unmarshal(v, spec)
	})
	if err != nil {
		return nil, fmt.Errorf("store: topology: %w", err)
	}
	return spec, nil
}

// SetTopology stores the topology. If one is stored already and differs,
// it fails: the stored tunnels were planned on it.
func (s *Store) SetTopology(spec te.TopologySpec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("store: topology: %w", err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if old := meta.Get(keyTopology); old != nil && !bytes.Equal(old, data) && tx.Bucket(bucketTunnels).Stats().KeyN > 0 {
			return errors.New("store: the topology differs from the stored one, which tunnels were planned on; release them or use a new data directory")
		}
		return meta.Put(keyTopology, data)
	})
}

func idKey(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

// maxID is the largest tunnel id in ts (0 if none).
func maxID(ts []tunnels.StoredTunnel) uint64 {
	var m uint64
	for _, t := range ts {
		m = max(m, t.Tunnel.ID)
	}
	return m
}

// Save implements tunnels.Store: when it returns nil, w is on disk (in
// the write-ahead log; in the database after the next checkpoint).
func (s *Store) Save(w tunnels.Writes) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return fmt.Errorf("store: %w", s.broken)
	}
	ops, next, err := s.encode(w)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if len(ops) == 0 {
		return nil
	}
	if fatal, err := s.wal.append(ops); err != nil {
		if fatal {
			s.broken = err
		}
		return fmt.Errorf("store: %w", err)
	}
	s.next = next
	s.pending = append(s.pending, ops...)
	if len(s.pending)%checkpointOps < len(ops) || s.wal.size >= checkpointBytes {
		// w is durable already: a failed checkpoint is not a failed Save.
		// Its ops stay pending (and logged); the next threshold, Load and
		// Close try again, and Close reports the error.
		_ = s.checkpoint()
	}
	return nil
}

// encode turns w into ops (deletes first, as they were applied before),
// and returns the next_id they leave.
func (s *Store) encode(w tunnels.Writes) ([]op, uint64, error) {
	ops := make([]op, 0, len(w.Delete)+len(w.Put)+len(w.Services)+len(w.Groups)+1)
	next := s.next
	if grown := maxID(w.Put) + 1; len(w.Put) > 0 && grown > next {
		next = grown
		ops = append(ops, op{kind: opNextID, val: idKey(grown)})
	}
	for _, id := range w.Delete {
		ops = append(ops, op{kind: opDeleteTunnel, key: idKey(id)})
	}
	for _, t := range w.Put {
		data, err := json.Marshal(t)
		if err != nil {
			return nil, 0, fmt.Errorf("tunnel %d: %w", t.Tunnel.ID, err)
		}
		ops = append(ops, op{kind: opPutTunnel, key: idKey(t.Tunnel.ID), val: data})
	}
	for _, sv := range w.Services {
		if sv.Name == "" {
			return nil, 0, errors.New("a service registration without a name")
		}
		data, err := json.Marshal(sv)
		if err != nil {
			return nil, 0, fmt.Errorf("service %s: %w", sv.Name, err)
		}
		ops = append(ops, op{kind: opPutService, key: []byte(sv.Name), val: data})
	}
	for g, ms := range w.Groups {
		key := []byte(g.String())
		if len(ms) == 0 {
			ops = append(ops, op{kind: opDeleteGroup, key: key})
			continue
		}
		data, err := json.Marshal(ms)
		if err != nil {
			return nil, 0, fmt.Errorf("group %s: %w", g, err)
		}
		ops = append(ops, op{kind: opPutGroup, key: key, val: data})
	}
	return ops, next, nil
}

// checkpoint writes the pending ops into the database in one transaction
// and empties the log.
func (s *Store) checkpoint() error {
	if len(s.pending) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		tb, counters, sb, gb := tx.Bucket(bucketTunnels), tx.Bucket(bucketCounters), tx.Bucket(bucketServices), tx.Bucket(bucketGroups)
		tb.FillPercent = 0.9 // ids only grow: keep pages full instead of half-split
		for _, o := range s.pending {
			var err error
			switch o.kind {
			case opPutTunnel:
				err = tb.Put(o.key, o.val)
			case opDeleteTunnel:
				err = tb.Delete(o.key)
			case opPutService:
				err = sb.Put(o.key, o.val)
			case opPutGroup:
				err = gb.Put(o.key, o.val)
			case opDeleteGroup:
				err = gb.Delete(o.key)
			case opNextID:
				if v := counters.Get(keyNextID); len(v) != 8 || binary.BigEndian.Uint64(v) < binary.BigEndian.Uint64(o.val) {
					err = counters.Put(keyNextID, o.val)
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	clear(s.pending) // let the collector have the values
	s.pending = s.pending[:0]
	if err := s.wal.reset(); err != nil {
		s.broken = err // the log may still hold what the database has: safe to replay, but not to append to blindly
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// Load implements tunnels.Store.
func (s *Store) Load() (tunnels.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == nil {
		if err := s.checkpoint(); err != nil {
			return tunnels.Snapshot{}, fmt.Errorf("store: load: %w", err)
		}
	}
	snap := tunnels.Snapshot{Groups: map[netip.AddrPort][]netip.Addr{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketCounters).Get(keyNextID); len(v) == 8 {
			snap.NextID = binary.BigEndian.Uint64(v)
		}
		err := tx.Bucket(bucketTunnels).ForEach(func(k, v []byte) error {
			var t tunnels.StoredTunnel
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("tunnel %x: %w", k, err)
			}
			snap.Tunnels = append(snap.Tunnels, t)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketServices).ForEach(func(k, v []byte) error {
			var sv tunnels.Service
			if err := json.Unmarshal(v, &sv); err != nil {
				return fmt.Errorf("service %q: %w", k, err)
			}
			if sv.Name != string(k) {
				return fmt.Errorf("service %q: the record names %q", k, sv.Name)
			}
			snap.Services = append(snap.Services, sv)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketGroups).ForEach(func(k, v []byte) error {
			g, err := netip.ParseAddrPort(string(k))
			if err != nil {
				return fmt.Errorf("group %q: %w", k, err)
			}
			var ms []netip.Addr
			if err := json.Unmarshal(v, &ms); err != nil {
				return fmt.Errorf("group %s: %w", g, err)
			}
			snap.Groups[g] = ms
			return nil
		})
	})
	if err != nil {
		return tunnels.Snapshot{}, fmt.Errorf("store: load: %w", err)
	}
	return snap, nil
}
