package watch

import (
	"context"
	"sync"
)

// keyedLock serialises work on one key (an image digest) within the process: two tags of one
// image pushed together ("1.2" and "latest") reach two workers at once, and without it both
// would pull and index the same image. Waiting honours the context.
type keyedLock struct {
	mu sync.Mutex
	// held has an entry per key with a holder or waiter, removed when the last one leaves, so
	// it is bounded by the number of workers.
	held map[string]*keyedEntry
}

type keyedEntry struct {
	ch    chan struct{} // a token: holding it is holding the lock
	users int
}

// lock waits for key and returns its release.
func (k *keyedLock) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.held == nil {
		k.held = map[string]*keyedEntry{}
	}
	e := k.held[key]
	if e == nil {
		e = &keyedEntry{ch: make(chan struct{}, 1)}
		k.held[key] = e
	}
	e.users++
	k.mu.Unlock()
	leave := func() {
		k.mu.Lock()
		if e.users--; e.users == 0 {
			delete(k.held, key)
		}
		k.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}
