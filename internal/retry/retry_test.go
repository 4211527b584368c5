package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDo(t *testing.T) {
	errTemp, errPerm := errors.New("temporary"), errors.New("permanent")
	perm := func(err error) bool { return errors.Is(err, errPerm) }
	for _, c := range []struct {
		name      string
		fails     []error // the error of each attempt; past the end, success
		retries   int
		wantCalls int
		wantErr   error
	}{
		{"first try", nil, 2, 1, nil},
		{"succeeds on the third", []error{errTemp, errTemp}, 2, 3, nil},
		{"runs out", []error{errTemp, errTemp, errTemp}, 2, 3, errTemp},
		{"permanent stops", []error{errTemp, errPerm, errTemp}, 5, 2, errPerm},
		{"no retries", []error{errTemp}, 0, 1, errTemp},
	} {
		calls := 0
		v, err := Do(context.Background(), c.retries, time.Microsecond, perm, func(context.Context) (int, error) {
			calls++
			if calls <= len(c.fails) {
				return 0, c.fails[calls-1]
			}
			return 42, nil
		})
		if calls != c.wantCalls || !errors.Is(err, c.wantErr) || (err == nil && v != 42) {
			t.Errorf("%s: %d calls, value %d, error %v; want %d calls, error %v", c.name, calls, v, err, c.wantCalls, c.wantErr)
		}
	}
}

func TestDoStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := Do(ctx, 10, time.Hour, nil, func(context.Context) (int, error) {
		calls++
		cancel()
		return 0, errors.New("failed")
	})
	if calls != 1 || err == nil {
		t.Errorf("%d calls, error %v; want 1 call and an error", calls, err)
	}
}
