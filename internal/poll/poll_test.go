package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUntilImmediateAndTrue(t *testing.T) {
	calls := 0
	start := time.Now()
	// An interval far beyond the test: only an immediate first call can finish it.
	err := Until(context.Background(), time.Hour, time.Hour, func(context.Context) (bool, error) {
		calls++
		return true, nil
	})
	if err != nil || calls != 1 || time.Since(start) > 10*time.Second {
		t.Fatalf("err %v, %d calls", err, calls)
	}
}

func TestUntilTimeoutNamesTheBound(t *testing.T) {
	calls := 0
	err := Until(context.Background(), time.Millisecond, 50*time.Millisecond, func(context.Context) (bool, error) {
		calls++
		return false, nil
	})
	if err == nil || err.Error() != "not after 50ms" {
		t.Fatalf("got %v", err)
	}
	if calls < 2 {
		t.Fatalf("cond ran %d times, want it polled", calls)
	}
}

func TestUntilWithoutTimeoutOnlyContextBounds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := Until(ctx, time.Millisecond, 0, func(context.Context) (bool, error) { return false, nil })
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "not after") {
		t.Fatalf("got %v, want the context's own error", err)
	}
}

func TestUntilCancelledParent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Until(ctx, time.Millisecond, time.Hour, func(context.Context) (bool, error) {
		calls++
		if calls == 3 {
			cancel()
		}
		return false, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if calls != 3 {
		t.Fatalf("cond ran %d times after the cancel, want none", calls-3)
	}
}

func TestUntilConditionErrorStops(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	err := Until(context.Background(), time.Millisecond, time.Hour, func(context.Context) (bool, error) {
		calls++
		if calls == 2 {
			return false, boom
		}
		return false, nil
	})
	if err != boom || calls != 2 {
		t.Fatalf("got %v after %d calls, want boom after 2", err, calls)
	}
	// A condition error that wraps DeadlineExceeded from its own call (an exec with its own
	// timeout) is that error, not "not after": only the loop's bound is named so.
	inner := context.DeadlineExceeded
	err = Until(context.Background(), time.Millisecond, time.Hour, func(context.Context) (bool, error) { return false, inner })
	if err != inner {
		t.Fatalf("got %v", err)
	}
}

func TestRetryingReportsTheLastError(t *testing.T) {
	calls := 0
	err := Retrying(context.Background(), time.Millisecond, 50*time.Millisecond, func(context.Context) (bool, error) {
		calls++
		return false, errors.New("daemonsets.apps \"x\" not found")
	})
	if err == nil || err.Error() != `not after 50ms (last error: daemonsets.apps "x" not found)` {
		t.Fatalf("got %v", err)
	}
	if calls < 2 {
		t.Fatalf("error not retried: %d calls", calls)
	}
}

func TestRetryingSucceedsAfterErrors(t *testing.T) {
	calls := 0
	err := Retrying(context.Background(), time.Millisecond, time.Hour, func(context.Context) (bool, error) {
		calls++
		if calls < 3 {
			return false, errors.New("not yet")
		}
		return true, nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("got %v after %d calls", err, calls)
	}
}

func TestRetryingLastCallWithoutErrorAddsNothing(t *testing.T) {
	calls := 0
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := Retrying(ctx, time.Millisecond, 0, func(context.Context) (bool, error) {
		calls++
		if calls == 1 {
			return false, errors.New("early")
		}
		return false, nil
	})
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "early") {
		t.Fatalf("got %v", err)
	}
}
