package outcome

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestMatchExitCodeElapsedHops: each new field decides the match on its own, and a prediction
// without a duration is out of model for elapsed, never a pass or a fail.
func TestMatchExitCodeElapsedHops(t *testing.T) {
	st := func(n int) Results { return Results{{Kind: KindStatus, Status: n}} }
	code := func(n int) *int { return &n }
	chain := Observed{HTTPCode: 200, Duration: 3 * time.Second, Hops: []Hop{
		{Status: 301, Headers: map[string]string{"location": "https://h/"}}, {Status: 200, Headers: map[string]string{"server": "envoy"}}}}
	timeout := Observed{ExitCode: 28, Duration: 2 * time.Second}
	for _, c := range []struct {
		e    Expected
		o    Observed
		want string // "" for a match
	}{
		{Expected{Result: Results{{Kind: KindTimeout}}, ExitCode: code(28)}, timeout, ""},
		{Expected{Result: Results{{Kind: KindTimeout}}, ExitCode: code(28)}, Observed{ExitCode: 7}, "expected timeout"},
		{Expected{Result: Results{{Kind: KindTimeout}}, CNIRejects: true, ExitCode: code(28)}, Observed{ExitCode: 7}, "expected curl exit 28, observed exit 7"},
		{Expected{Result: st(200), Elapsed: &Elapsed{Min: 2 * time.Second, Max: 4 * time.Second}}, chain, ""},
		{Expected{Result: st(200), Elapsed: &Elapsed{Max: 2 * time.Second}}, chain, "expected curl to take at most 2s, observed 3s"},
		{Expected{Result: st(200), Elapsed: &Elapsed{Min: 4 * time.Second}}, chain, "expected curl to take at least 4s"},
		{Expected{Result: st(200), Hops: []HopExpected{{Status: 301, Headers: map[string]string{"Location": "https://h/"}}, {Status: 200}}}, chain, ""},
		{Expected{Result: st(200), Hops: []HopExpected{{Status: 200}}}, chain, "expected 1 responses (200), observed 2 (301 -> 200)"},
		{Expected{Result: st(200), Hops: []HopExpected{{Status: 302}, {Status: 200}}}, chain, "expected response 1 of 2: status 302, observed 301"},
		{Expected{Result: st(200), Hops: []HopExpected{{Status: 301}, {Status: 200, Headers: map[string]string{"server": "istio"}}}}, chain, "expected response 2 of 2: header server: istio, observed server: envoy"},
		{Expected{Result: st(200), First: &HopExpected{Status: 301, Headers: map[string]string{"location": "https://h/"}}}, chain, ""},
		{Expected{Result: st(200), First: &HopExpected{Status: 301, Headers: map[string]string{"x-a": "b"}}}, chain, "expected first response: header x-a: b, observed no such header"},
		{Expected{Result: Results{{Kind: KindTimeout}}, First: &HopExpected{Status: 301}}, timeout, "expected a first response 301, observed no response"},
	} {
		err := Match(&c.e, c.o)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want a match", c.e.String(), err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.e.String(), err, c.want)
		}
	}
	predicted := chain
	predicted.DurationUnknown = true
	var oom *OutOfModelError
	if err := Match(&Expected{Result: st(200), Elapsed: &Elapsed{Max: time.Hour}}, predicted); !errors.As(err, &oom) || !strings.Contains(err.Error(), "elapsed time") {
		t.Errorf("elapsed on a prediction: %v, want out of model", err)
	}
	// What a prediction does show still decides first: a wrong status is a fail, not out of model.
	if err := Match(&Expected{Result: st(403), Elapsed: &Elapsed{Max: time.Hour}}, predicted); err == nil || errors.As(err, &oom) {
		t.Errorf("a wrong status with elapsed on a prediction: %v, want a mismatch", err)
	}
	if err := Match(&Expected{Result: st(200)}, predicted); err != nil {
		t.Errorf("no elapsed on a prediction: %v", err)
	}
}
