package retry

import (
	"context"
	"time"
)

// Do calls attempt up to 1+retries times, waiting backoff, 2*backoff, ...
// between calls, and returns its first success. It stops early when
// permanent(err) says another attempt cannot help, or when ctx ends (then
// the last attempt's error is returned, or ctx's error while waiting).
func Do[T any](ctx context.Context, retries int, backoff time.Duration, permanent func(error) bool, attempt func(context.Context) (T, error)) (T, error) {
	var zero T
	var last error
	for i := 0; i <= max(retries, 0); i++ {
		if i > 0 {
			select {
			case <-time.After(backoff << (i - 1)):
			case <-ctx.Done():
				return zero, ctx.Err()
			}
		}
		v, err := attempt(ctx)
		if err == nil {
			return v, nil
		}
		last = err
		if ctx.Err() != nil || (permanent != nil && permanent(err)) {
			break
		}
	}
	return zero, last
}
