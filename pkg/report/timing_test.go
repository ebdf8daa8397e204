package report

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPhaseBucket(t *testing.T) {
	for name, want := range map[string]string{
		"kind cluster egressconf-e2e":        "cluster create",
		"kind cluster egressconf-e2e delete": "cluster delete",
		"image load /x/pilot.tar":            "image build and load",
		"image loads (5 archives, together)": "image build and load",
		"NetworkPolicy self-test (a deny-all egress policy must block), alongside the stand-in and DNS": "NetworkPolicy self-test (alongside others)",
		"NetworkPolicy self-test (a deny-all egress policy must block)":                                 "detection and self-tests",
		"stand-in image build docker.io/x":                                                              "image build and load",
		"Istio install":                                                                                 "Istio install",
		"cluster DNS override":                                                                          "stand-in internet and DNS",
		"stand-in deploy":                                                                               "stand-in internet and DNS",
		"G11 fixtures sleep@default":                                                                    "fixtures (within group setup)",
		"leak check":                                                                                    "leak check and cleanup",
		"something new":                                                                                 "other",
	} {
		if got := PhaseBucket(name); got != want {
			t.Errorf("PhaseBucket(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestMedianApplyToConverged(t *testing.T) {
	s := time.Second
	tm := &Timing{Groups: []GroupTiming{{ApplyToConverged: []time.Duration{3 * s, 1 * s}}, {ApplyToConverged: []time.Duration{2 * s}}}}
	if m, n := tm.MedianApplyToConverged(); m != 2*s || n != 3 {
		t.Errorf("median %s of %d, want 2s of 3", m, n)
	}
	tm.Groups = append(tm.Groups, GroupTiming{ApplyToConverged: []time.Duration{10 * s}})
	if m, n := tm.MedianApplyToConverged(); m != 2500*time.Millisecond || n != 4 {
		t.Errorf("median %s of %d, want 2.5s of 4", m, n)
	}
	if _, n := (&Timing{}).MedianApplyToConverged(); n != 0 {
		t.Errorf("no steps: n = %d", n)
	}
}

// TestWriteTimingsSideBySide: two runs as columns, phases summed by bucket, the groups' parts
// summed, a row one run lacks shown as "-".
func TestWriteTimingsSideBySide(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	fresh := &Run{ID: "fresh", Started: t0, Finished: t0.Add(14 * time.Minute), Timing: &Timing{Wall: 15 * time.Minute,
		Phases: []PhaseTime{{Name: "kind cluster x", Duration: 16 * time.Second}, {Name: "image load a.tar", Duration: 2 * time.Second}, {Name: "image load b.tar", Duration: 3 * time.Second}},
		Groups: []GroupTiming{{Group: "G1", Wall: 40 * time.Second, Converge: 20 * time.Second, Holds: 7 * time.Second}, {Group: "G2", Wall: 30 * time.Second, Converge: 5 * time.Second}},
	}}
	reused := &Run{ID: "reused", Started: t0, Finished: t0.Add(12 * time.Minute), Timing: &Timing{Wall: 12*time.Minute + 30*time.Second,
		Phases: []PhaseTime{{Name: "kind cluster x", Duration: 1 * time.Second}},
		Groups: []GroupTiming{{Group: "G1", Wall: 35 * time.Second}},
	}}
	var sb strings.Builder
	WriteTimings(&sb, []*Run{fresh, reused})
	out := sb.String()
	for _, re := range []string{
		`(?m)^\s+fresh\s+reused$`,
		`(?m)^wall time \(start to report\)\s+15m0s\s+12m30s$`,
		`(?m)^  suite \(groups, reports\)\s+14m0s\s+12m0s$`,
		`(?m)^  cluster create\s+16s\s+1s$`,
		`(?m)^  image build and load\s+5s\s+-$`,
		`(?m)^    convergence\s+25s\s+0s$`,
		`(?m)^      holding windows \(summed\)\s+7s\s+0s$`,
		`(?m)^    group G2\s+30s\s+-$`,
	} {
		if !matches(re, out) {
			t.Errorf("no line matching %s in:\n%s", re, out)
		}
	}
}

func TestPhaseLogPassesThroughAndRecords(t *testing.T) {
	var sb strings.Builder
	l := &PhaseLog{W: &sb}
	_, _ = l.Write([]byte("== x …\n"))
	l.RecordPhase("x", time.Second, false)
	l.RecordPhase("y", 2*time.Second, true)
	if sb.String() != "== x …\n" {
		t.Errorf("written %q", sb.String())
	}
	ph := l.Phases()
	if len(ph) != 2 || ph[0] != (PhaseTime{Name: "x", Duration: time.Second}) || !ph[1].Failed {
		t.Errorf("phases %+v", ph)
	}
}

func matches(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
