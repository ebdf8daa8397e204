// Package poll is the one bounded polling loop of the live backend, its addons and the Istio
// install: k8s.io/apimachinery's wait.PollUntilContextCancel with the condition run at once, plus
// the error text the callers report (what bound passed, the last error of a retried condition).
package poll

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Until runs cond at once and then every interval until it returns true (nil) or an error (that
// error: a condition error stops the loop), or a bound passes. timeout > 0 bounds the loop: when
// it passes (or a deadline of ctx) the error is "not after <timeout>"; timeout <= 0 leaves only ctx
// to bound it. A cancelled ctx gives ctx.Err().
func Until(ctx context.Context, interval, timeout time.Duration, cond wait.ConditionWithContextFunc) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	err := wait.PollUntilContextCancel(ctx, interval, true, cond)
	if timeout > 0 && err != nil && err == ctx.Err() && errors.Is(err, context.DeadlineExceeded) {
		// The loop ended at the deadline (not on an error of cond, which is returned as it is):
		// name the bound rather than "context deadline exceeded".
		return fmt.Errorf("not after %s", timeout)
	}
	return err
}

// Retrying is Until, except that an error of cond does not stop the loop (an object not created
// yet, an API server busy for a moment): it is retried, and when a bound passes while the last
// call erred, that error is added: "<bound error> (last error: <err>)".
func Retrying(ctx context.Context, interval, timeout time.Duration, cond wait.ConditionWithContextFunc) error {
	var last error
	err := Until(ctx, interval, timeout, func(ctx context.Context) (bool, error) {
		var ok bool
		ok, last = cond(ctx)
		return ok, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last error: %v)", err, last)
	}
	return err
}
