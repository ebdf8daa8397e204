// Package fakebackend is an in-memory backend for unit tests of the runner and the suite mechanics.
// Its results are scripted, so it is never offered as a backend to users: it lives under internal/
// and its oracle says "fake".
package fakebackend

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
)

// Responder decides a probe's observation from the state so far.
type Responder func(b *Backend, from catalog.Workload, req *probe.Request) (outcome.Observed, error)

// Backend records every call and answers probes with a Responder.
type Backend struct {
	mu            sync.Mutex
	Deterministic bool
	Caps          map[string]bool
	Respond       Responder
	// SetupErr, if set, fails Setup; TeardownErr, Teardown.
	SetupErr    error
	TeardownErr error
	// Unobservable maps workload refs to a reason.
	NoObserve map[string]string

	Calls   []string
	Applied map[string]backend.Manifest
	Mesh    string
	Logs    map[string][]Logged
	Probes  int
	// InFlight is how many probes are being answered now; MaxInFlight the most at once (the
	// runner's checks of a step run together on a non-deterministic backend).
	InFlight, MaxInFlight int
	// current is the marker of the probe being answered; Log tags entries with it. Answers are
	// given one at a time (answering), so a Responder needs no locking of its own.
	current   string
	answering sync.Mutex
	// ProbeDelay, if set, is how long each probe takes (after its answer is decided).
	ProbeDelay time.Duration

	// PredictOracle and Predictor make the fake a backend.Predictor (as the live backend with
	// --probe curl,xds): each check is also predicted by Predictor. An empty oracle predicts nothing.
	PredictOracle backend.Oracle
	Predictor     Responder
	PredictCaps   map[string]bool
	PredLogs      map[string][]Logged
	Predictions   int
	// predicting is the marker of the prediction being answered; PredLog tags entries with it.
	predicting string
}

// Logged is an access-log entry with its time.
type Logged struct {
	At    time.Time
	Entry outcome.LogEntry
}

// New returns a fake backend answering with respond.
func New(respond Responder) *Backend {
	return &Backend{Respond: respond, Applied: map[string]backend.Manifest{}, Logs: map[string][]Logged{}, PredLogs: map[string][]Logged{}, Caps: map[string]bool{}}
}

func (b *Backend) call(format string, args ...any) {
	b.Calls = append(b.Calls, fmt.Sprintf(format, args...))
}

// Info implements backend.Backend.
func (b *Backend) Info() backend.Info {
	return backend.Info{Name: "fake", Oracle: backend.OracleFake, Deterministic: b.Deterministic, Capabilities: b.Caps}
}

// Setup implements backend.Backend.
func (b *Backend) Setup(_ context.Context, s *catalog.Scenario) error {
	b.call("setup %s", s.Metadata.Group)
	b.Mesh = s.Spec.MeshPolicy
	return b.SetupErr
}

// SetMeshPolicy implements backend.Backend.
func (b *Backend) SetMeshPolicy(_ context.Context, mode string) error {
	b.call("mesh %s", mode)
	b.Mesh = mode
	return nil
}

// Apply implements backend.Backend.
func (b *Backend) Apply(_ context.Context, m backend.Manifest) error {
	b.call("apply %s", m.Key)
	b.Applied[m.Key] = m
	return nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(_ context.Context, m backend.Manifest) error {
	b.call("delete %s", m.Key)
	delete(b.Applied, m.Key)
	return nil
}

// Deploy implements backend.Backend.
func (b *Backend) Deploy(_ context.Context, w catalog.Workload) error {
	b.call("deploy %s", w.Ref())
	return nil
}

// Remove implements backend.Backend.
func (b *Backend) Remove(_ context.Context, w catalog.Workload) error {
	b.call("remove %s", w.Ref())
	return nil
}

// Converge implements backend.Backend.
func (b *Backend) Converge(context.Context) error { b.call("converge"); return nil }

// Probe implements backend.Backend.
func (b *Backend) Probe(_ context.Context, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
	b.mu.Lock()
	b.InFlight++
	b.MaxInFlight = max(b.MaxInFlight, b.InFlight)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.InFlight--
		b.mu.Unlock()
	}()
	obs, err := b.answer(from, req)
	if b.ProbeDelay > 0 {
		time.Sleep(b.ProbeDelay)
	}
	return obs, err
}

// answer runs the Responder, one probe at a time (a Responder that panics releases the turn).
func (b *Backend) answer(from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
	b.answering.Lock()
	defer b.answering.Unlock()
	b.mu.Lock()
	b.Probes++
	b.current = fmt.Sprintf("p%d", b.Probes)
	b.mu.Unlock()
	obs, err := b.Respond(b, from, req)
	obs.Probe = b.current
	return obs, err
}

// Log adds an access-log entry for a workload, now. An entry without a probe marker gets the
// marker of the probe being answered (the request that caused it).
func (b *Backend) Log(ref string, e outcome.LogEntry) {
	if _, ok := e[outcome.LogFieldProbe]; !ok && b.current != "" {
		c := outcome.LogEntry{outcome.LogFieldProbe: b.current}
		for k, v := range e {
			c[k] = v
		}
		e = c
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Logs[ref] = append(b.Logs[ref], Logged{At: time.Now(), Entry: e})
}

// AccessLog implements backend.Backend.
func (b *Backend) AccessLog(_ context.Context, w catalog.Workload, since time.Time) ([]outcome.LogEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []outcome.LogEntry
	for _, l := range b.Logs[w.Ref()] {
		if !l.At.Before(since) {
			out = append(out, l.Entry)
		}
	}
	return out, nil
}

// Unobservable implements backend.Backend.
func (b *Backend) Unobservable(w catalog.Workload) string { return b.NoObserve[w.Ref()] }

// Diagnostics implements backend.Backend.
func (b *Backend) Diagnostics(_ context.Context, dir string) error {
	b.call("diagnostics %s", filepath.Base(dir))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "calls.txt"), []byte(fmt.Sprint(b.Calls)), 0o644)
}

// Teardown implements backend.Backend.
func (b *Backend) Teardown(_ context.Context, s *catalog.Scenario) error {
	b.call("teardown %s", s.Metadata.Group)
	b.Applied = map[string]backend.Manifest{}
	return b.TeardownErr
}

// PredictionOracle implements backend.Predictor.
func (b *Backend) PredictionOracle() backend.Oracle { return b.PredictOracle }

// PredictionCapabilities implements backend.Predictor.
func (b *Backend) PredictionCapabilities() map[string]bool { return b.PredictCaps }

// Predict implements backend.Predictor: the Predictor answers, with markers x1, x2, ...
func (b *Backend) Predict(_ context.Context, from catalog.Workload, req *probe.Request) (outcome.Observed, error) {
	b.mu.Lock()
	b.Predictions++
	b.predicting = fmt.Sprintf("x%d", b.Predictions)
	b.mu.Unlock()
	b.call("predict %s", from.Ref())
	obs, err := b.Predictor(b, from, req)
	obs.Probe = b.predicting
	return obs, err
}

// PredLog adds a predicted access-log entry for a workload, tagged with the prediction being
// answered.
func (b *Backend) PredLog(ref string, e outcome.LogEntry) {
	c := outcome.LogEntry{outcome.LogFieldProbe: b.predicting}
	for k, v := range e {
		c[k] = v
	}
	b.PredLogs[ref] = append(b.PredLogs[ref], Logged{At: time.Now(), Entry: c})
}

// PredictedAccessLog implements backend.Predictor.
func (b *Backend) PredictedAccessLog(_ context.Context, w catalog.Workload, since time.Time) ([]outcome.LogEntry, error) {
	var out []outcome.LogEntry
	for _, l := range b.PredLogs[w.Ref()] {
		if !l.At.Before(since) {
			out = append(out, l.Entry)
		}
	}
	return out, nil
}
