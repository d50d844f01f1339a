package store

import (
	"container/list"
	"crypto/sha256"
	"sync"

	"github.com/crowsnest-dev/crowsnest/internal/vuln"
)

// advisoryCacheSize bounds the decoded advisories kept per Store. Matching an image reads a few
// thousand records and most images share their base packages' advisories; a decoded record is a
// few KB, so this is tens of MB at most.
const advisoryCacheSize = 32768

// advisoryCache is an LRU of decoded advisories keyed by id and validated by content hash: a
// record changed by an import (in this process or another replica) has a new hash and is
// decoded again, so nothing needs invalidating for correctness.
type advisoryCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front = most recently used
	items map[string]*list.Element
}

type cachedAdvisory struct {
	id   string
	hash [sha256.Size]byte
	a    *vuln.Advisory
}

func newAdvisoryCache(max int) *advisoryCache {
	return &advisoryCache{max: max, ll: list.New(), items: make(map[string]*list.Element)}
}

// get returns the cached advisory id if its hash is hash.
func (c *advisoryCache) get(id string, hash []byte) *vuln.Advisory {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[id]
	if !ok {
		return nil
	}
	ca := e.Value.(*cachedAdvisory)
	if string(ca.hash[:]) != string(hash) {
		return nil
	}
	c.ll.MoveToFront(e)
	return ca.a
}

func (c *advisoryCache) put(id string, hash []byte, a *vuln.Advisory) {
	if c.max <= 0 || len(hash) != sha256.Size {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[id]; ok {
		ca := e.Value.(*cachedAdvisory)
		copy(ca.hash[:], hash)
		ca.a = a
		c.ll.MoveToFront(e)
		return
	}
	ca := &cachedAdvisory{id: id, a: a}
	copy(ca.hash[:], hash)
	c.items[id] = c.ll.PushFront(ca)
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cachedAdvisory).id)
	}
}

// forget drops ids (advisories an import replaced or removed), freeing their memory early.
func (c *advisoryCache) forget(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if e, ok := c.items[id]; ok {
			c.ll.Remove(e)
			delete(c.items, id)
		}
	}
}
