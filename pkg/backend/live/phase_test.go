package live

import (
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/egressconf/egressconf/pkg/report"
)

// tickWriter collects lines and reports once it has seen n "still running" lines.
type tickWriter struct {
	mu    sync.Mutex
	b     strings.Builder
	ticks int
	n     int
	seen  chan struct{}
}

func (w *tickWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(string(p), "still running") {
		if w.ticks++; w.ticks == w.n {
			close(w.seen)
		}
	}
	return len(p), nil
}

func (w *tickWriter) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Split(strings.TrimSuffix(w.b.String(), "\n"), "\n")
}

// runLongPhase runs a phase that lasts until it has said "still running" twice.
func runLongPhase(t *testing.T, fail error) (*tickWriter, error) {
	t.Helper()
	w := &tickWriter{n: 2, seen: make(chan struct{})}
	err := PhaseEvery(w, "Istio install", time.Millisecond, func() error {
		select {
		case <-w.seen:
		case <-time.After(time.Minute): // only bounds a broken PhaseEvery; never reached when it ticks
			t.Error("no two \"still running\" lines within a minute")
		}
		return fail
	})
	return w, err
}

// TestPhaseSaysStartStillRunningAndEnd: a long phase prints its start, "still running" with the
// elapsed time while it runs, and its end with the duration; nothing after the end.
func TestPhaseSaysStartStillRunningAndEnd(t *testing.T) {
	w, err := runLongPhase(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	lines := w.lines()
	if len(lines) < 4 || lines[0] != "== Istio install …" {
		t.Fatalf("want a start line, 2+ still-running lines and an end line:\n%s", strings.Join(lines, "\n"))
	}
	tick := regexp.MustCompile(`^   … Istio install still running \([0-9hms.]+\)$`)
	for _, l := range lines[1 : len(lines)-1] {
		if !tick.MatchString(l) {
			t.Errorf("line %q is not a still-running line", l)
		}
	}
	if end := lines[len(lines)-1]; !regexp.MustCompile(`^== Istio install [0-9.]+(ms|s|µs)$`).MatchString(end) {
		t.Errorf("last line %q is not the end line with the duration", end)
	}
}

// TestPhaseFailureNamesThePhase: a failed phase ends with FAILED and its error, wrapped with
// the phase's name.
func TestPhaseFailureNamesThePhase(t *testing.T) {
	w, err := runLongPhase(t, errors.New("helm: timed out"))
	if err == nil || err.Error() != "Istio install: helm: timed out" {
		t.Fatalf("error %v", err)
	}
	lines := w.lines()
	if last := lines[len(lines)-1]; !regexp.MustCompile(`^== Istio install FAILED after [0-9.]+(ms|s|µs): helm: timed out$`).MatchString(last) {
		t.Errorf("last line %q", last)
	}
}

// TestPhaseShortSaysNoStillRunning: a phase that ends before its first interval is its start
// and end lines only.
func TestPhaseShortSaysNoStillRunning(t *testing.T) {
	var b strings.Builder
	if err := PhaseEvery(&b, "leak check", time.Hour, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "== leak check …" || !strings.HasPrefix(lines[1], "== leak check ") || strings.Contains(b.String(), "still running") {
		t.Errorf("output:\n%s", b.String())
	}
}

// TestPhaseRecordsOnAPhaseLog: a progress writer that keeps phases (report.PhaseLog) gets each
// phase's name, duration and failure, for the report's timing breakdown.
func TestPhaseRecordsOnAPhaseLog(t *testing.T) {
	var sb strings.Builder
	l := &report.PhaseLog{W: &sb}
	if err := Phase(l, "Istio install", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	_ = Phase(l, "image load a.tar", func() error { return errors.New("boom") })
	ph := l.Phases()
	if len(ph) != 2 || ph[0].Name != "Istio install" || ph[0].Failed || ph[1].Name != "image load a.tar" || !ph[1].Failed {
		t.Fatalf("phases %+v", ph)
	}
	if !strings.Contains(sb.String(), "== Istio install ") {
		t.Errorf("the progress did not pass through: %q", sb.String())
	}
}
