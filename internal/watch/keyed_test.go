package watch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeyedLockSerialisesOneKey(t *testing.T) {
	var k keyedLock
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "a"
			if i%2 == 1 {
				key = "b"
			}
			unlock, err := k.lock(context.Background(), key)
			if err != nil {
				t.Error(err)
				return
			}
			if key == "a" {
				n := inside.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(time.Millisecond)
				inside.Add(-1)
			}
			unlock()
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("%d holders of one key at once", most.Load())
	}
	if len(k.held) != 0 {
		t.Errorf("%d keys left after every holder left", len(k.held))
	}
}

func TestKeyedLockWaitEndsWithContext(t *testing.T) {
	var k keyedLock
	unlock, _ := k.lock(context.Background(), "a")
	other, _ := k.lock(context.Background(), "b") // another key is not blocked
	other()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting on a held key: %v", err)
	}
	unlock()
	if len(k.held) != 0 {
		t.Errorf("%d keys left", len(k.held))
	}
	again, err := k.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	again()
}
