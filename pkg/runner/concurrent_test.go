package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/egressconf/egressconf/internal/fakebackend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
	"github.com/egressconf/egressconf/pkg/report"
	"github.com/egressconf/egressconf/pkg/runner"
)

// TestStepChecksRunTogether: the probe checks of a step (T-POS-01 and T-NEG-01) are in flight at
// the same time on a non-deterministic backend, and every verdict, including the log check that
// reads its own request's entry, is what it is when they run one after another.
func TestStepChecksRunTogether(t *testing.T) {
	for _, serial := range []bool{false, true} {
		b := fakebackend.New(mesh)
		b.ProbeDelay = 20 * time.Millisecond
		got, _ := runWith(t, b, runner.Options{SerialChecks: serial})
		for id, v := range map[string]report.Verdict{"T-POS-01": report.Pass, "T-NEG-01": report.Pass, "T-LOG-01": report.Pass, "T-DEL-01": report.Pass} {
			if got[id].Verdict != v {
				t.Errorf("serial=%v: %s %s (%s), want %s", serial, id, got[id].Verdict, got[id].Message, v)
			}
		}
		switch {
		case serial && b.MaxInFlight != 1:
			t.Errorf("SerialChecks: %d probes in flight at once, want 1", b.MaxInFlight)
		case !serial && b.MaxInFlight < 2:
			t.Errorf("the step's checks ran one after another (%d in flight at most)", b.MaxInFlight)
		}
	}
}

// TestUnselectedChecksDoNotStart: when the step converges, only the selected expectations' checks
// start: T-NEG-01, not selected and never checked, sends no request.
func TestUnselectedChecksDoNotStart(t *testing.T) {
	blocked := 0
	b := fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		if req.Host == "blocked.example.com" {
			blocked++
		}
		return mesh(b, from, req)
	})
	s := loadBasic(t)
	r := runner.New(runner.Options{Backend: b, Timeouts: fastTimeouts(), ReportDir: t.TempDir(),
		Selected: func(id string) bool { return id != "T-NEG-01" }})
	ctx := context.Background()
	r.Begin(ctx, s)
	r.Step(ctx, 0, &s.Spec.Steps[0])
	if res := r.Check(ctx, &s.Spec.Steps[0], &s.Spec.Steps[0].Expect[0]); res.ID != "T-POS-01" || res.Verdict != report.Pass {
		t.Fatalf("%s %s (%s)", res.ID, res.Verdict, res.Message)
	}
	if err := r.End(ctx); err != nil {
		t.Fatal(err)
	}
	if blocked != 0 {
		t.Errorf("%d requests of the unselected T-NEG-01", blocked)
	}
	// The same with T-NEG-01 selected: its check starts with the step, checked or not.
	b2 := fakebackend.New(b.Respond)
	r = runner.New(runner.Options{Backend: b2, Timeouts: fastTimeouts(), ReportDir: t.TempDir()})
	r.Begin(ctx, s)
	r.Step(ctx, 0, &s.Spec.Steps[0])
	r.Check(ctx, &s.Spec.Steps[0], &s.Spec.Steps[0].Expect[0])
	if err := r.End(ctx); err != nil {
		t.Fatal(err)
	}
	if blocked == 0 {
		t.Error("a selected expectation's check did not start with its step")
	}
}

// TestDeterministicBackendChecksOneAtATime: a prediction is one evaluation; nothing runs together.
func TestDeterministicBackendChecksOneAtATime(t *testing.T) {
	b := fakebackend.New(mesh)
	b.Deterministic = true
	b.ProbeDelay = 5 * time.Millisecond
	runWith(t, b, runner.Options{})
	if b.MaxInFlight != 1 {
		t.Errorf("%d in flight on a deterministic backend", b.MaxInFlight)
	}
}

// TestSerialStepRunsOneAtATime: a step marked serial in the catalog runs its checks in order.
func TestSerialStepRunsOneAtATime(t *testing.T) {
	b := fakebackend.New(mesh)
	b.ProbeDelay = 20 * time.Millisecond
	s := loadBasic(t)
	for i := range s.Spec.Steps {
		s.Spec.Steps[i].Serial = true
	}
	r := runner.New(runner.Options{Backend: b, Timeouts: fastTimeouts(), ReportDir: t.TempDir()})
	if err := r.RunScenario(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if b.MaxInFlight != 1 {
		t.Errorf("serial steps: %d in flight", b.MaxInFlight)
	}
}

// TestInterruptedWaitStopsTheStepsChecks: a check whose context ends while it waits for its
// started check is an error ("interrupted"), and the started checks are stopped, not left running.
func TestInterruptedWaitStopsTheStepsChecks(t *testing.T) {
	b := fakebackend.New(func(b *fakebackend.Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
		return status(502), nil // T-POS-01 never gets its 200: it probes until Eventually passes
	})
	s := loadBasic(t)
	tm := fastTimeouts()
	tm.Eventually = time.Hour
	r := runner.New(runner.Options{Backend: b, Timeouts: tm, ReportDir: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	r.Begin(ctx, s)
	r.Step(ctx, 0, &s.Spec.Steps[0])
	time.AfterFunc(50*time.Millisecond, cancel)
	res := r.Check(ctx, &s.Spec.Steps[0], &s.Spec.Steps[0].Expect[0])
	if res.Verdict != report.Error || res.Checks[0].Message == "" {
		t.Fatalf("%s: %s %+v", res.ID, res.Verdict, res.Checks)
	}
	if err := r.End(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := b.Probes
	time.Sleep(50 * time.Millisecond)
	if b.Probes != n {
		t.Errorf("probes went on after the interrupted check and the teardown (%d then %d)", n, b.Probes)
	}
}
