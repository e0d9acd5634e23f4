// Package store keeps the controller's state in an embedded bbolt
// database: the topology, every tunnel with its owner, request and tree,
// the multicast group memberships, and the service registrations. The controller writes here before
// it touches a switch, so after a crash it can put everything back.
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

// Store is a bbolt-backed tunnels.Store.
type Store struct {
	db *bolt.DB
}

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
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

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

// Save implements tunnels.Store: one bbolt transaction, synced to disk.
func (s *Store) Save(w tunnels.Writes) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bucketTunnels)
		tb.FillPercent = 0.9 // ids only grow: keep pages full instead of half-split
		counters := tx.Bucket(bucketCounters)
		next := uint64(0)
		if v := counters.Get(keyNextID); len(v) == 8 {
			next = binary.BigEndian.Uint64(v)
		}
		if grown := maxID(w.Put) + 1; len(w.Put) > 0 && grown > next {
			if err := counters.Put(keyNextID, idKey(grown)); err != nil {
				return err
			}
		}
		for _, id := range w.Delete {
			if err := tb.Delete(idKey(id)); err != nil {
				return err
			}
		}
		for _, t := range w.Put {
			data, err := json.Marshal(t)
			if err != nil {
				return fmt.Errorf("tunnel %d: %w", t.Tunnel.ID, err)
			}
			if err := tb.Put(idKey(t.Tunnel.ID), data); err != nil {
				return err
			}
		}
		sb := tx.Bucket(bucketServices)
		for _, sv := range w.Services {
			if sv.Name == "" {
				return errors.New("a service registration without a name")
			}
			data, err := json.Marshal(sv)
			if err != nil {
				return fmt.Errorf("service %s: %w", sv.Name, err)
			}
			if err := sb.Put([]byte(sv.Name), data); err != nil {
				return err
			}
		}
		gb := tx.Bucket(bucketGroups)
		for g, ms := range w.Groups {
			key := []byte(g.String())
			if len(ms) == 0 {
				if err := gb.Delete(key); err != nil {
					return err
				}
				continue
			}
			data, err := json.Marshal(ms)
			if err != nil {
				return err
			}
			if err := gb.Put(key, data); err != nil {
				return err
			}
		}
		return nil
	})
}

// Load implements tunnels.Store.
func (s *Store) Load() (tunnels.Snapshot, error) {
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
