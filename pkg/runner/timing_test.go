package runner_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/egressconf/egressconf/internal/fakebackend"
	"github.com/egressconf/egressconf/pkg/runner"
)

// slowConverge is the fake mesh whose proxies take a known time to converge.
type slowConverge struct {
	*fakebackend.Backend
	d time.Duration
}

func (s slowConverge) Converge(ctx context.Context) error {
	time.Sleep(s.d)
	return s.Backend.Converge(ctx)
}

// TestGroupTimingsSplitTheScenario: each scenario gets a timing entry with its convergence waits
// (one per step, at least the fake's delay), its holds and a wall time covering the parts.
func TestGroupTimingsSplitTheScenario(t *testing.T) {
	b := slowConverge{fakebackend.New(mesh), 15 * time.Millisecond}
	r := runner.New(runner.Options{Backend: b, Timeouts: fastTimeouts(), Progress: io.Discard, ReportDir: t.TempDir()})
	s := loadBasic(t)
	for i := 0; i < 2; i++ {
		if err := r.RunScenario(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	gs := r.GroupTimings()
	if len(gs) != 2 {
		t.Fatalf("%d group timings, want 2", len(gs))
	}
	for _, g := range gs {
		if g.Group != s.Metadata.Group {
			t.Errorf("group %q, want %q", g.Group, s.Metadata.Group)
		}
		if len(g.ApplyToConverged) != len(s.Spec.Steps) {
			t.Errorf("%d apply-to-converged times, want one per step (%d)", len(g.ApplyToConverged), len(s.Spec.Steps))
		}
		for i, d := range g.ApplyToConverged {
			if d < b.d {
				t.Errorf("step %d apply-to-converged %s, less than the fake's convergence %s", i+1, d, b.d)
			}
		}
		if g.Converge < time.Duration(len(s.Spec.Steps))*b.d {
			t.Errorf("converge %s, want at least %d x %s", g.Converge, len(s.Spec.Steps), b.d)
		}
		// T-NEG-01 holds for the negative-hold window.
		if g.Holds < fastTimeouts().NegativeHold {
			t.Errorf("holds %s, want at least the negative hold %s", g.Holds, fastTimeouts().NegativeHold)
		}
		if g.Wall < g.Setup+g.Converge+g.Holds+g.Teardown {
			t.Errorf("wall %s shorter than its parts (setup %s, converge %s, holds %s, teardown %s)", g.Wall, g.Setup, g.Converge, g.Holds, g.Teardown)
		}
	}
	if tot := r.Timing().Converge; tot != gs[0].Converge+gs[1].Converge {
		t.Errorf("the run's convergence %s is not the groups' sum %s", tot, gs[0].Converge+gs[1].Converge)
	}
}
