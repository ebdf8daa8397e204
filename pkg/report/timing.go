package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// Timing is where a run's wall time went, for `make bench-live` and the summary: the provisioning
// phases in the order they ran (cluster create, image loads, Istio install, stand-in, ...), then
// each group's setup, step actions, convergence, probes, holding windows, log reads and teardown.
type Timing struct {
	// Wall is from the command's start (before any cluster is created) to the report.
	Wall   time.Duration `json:"wall,omitempty" yaml:"wall,omitempty"`
	Phases []PhaseTime   `json:"phases,omitempty" yaml:"phases,omitempty"`
	Groups []GroupTiming `json:"groups,omitempty" yaml:"groups,omitempty"`
}

// PhaseTime is one provisioning or cleanup phase (live.Phase): its printed name and duration.
type PhaseTime struct {
	Name     string        `json:"name" yaml:"name"`
	Duration time.Duration `json:"duration" yaml:"duration"`
	Failed   bool          `json:"failed,omitempty" yaml:"failed,omitempty"`
}

// GroupTiming is one scenario's time, split by what the runner was doing. Wall is setup to the end
// of teardown; the parts do not add up to it exactly (the runner's own bookkeeping, diagnostics).
type GroupTiming struct {
	Group string `json:"group" yaml:"group"`
	// Setup: namespaces, gateways, fixtures and the starting mesh policy.
	Setup time.Duration `json:"setup" yaml:"setup"`
	// Actions: applying and deleting the steps' resources, deploying and removing workloads.
	Actions time.Duration `json:"actions" yaml:"actions"`
	// Converge: waiting until the proxies hold each step's changes.
	Converge time.Duration `json:"converge" yaml:"converge"`
	// Probes: inside the backend's probes (curl in the pods, or model evaluations).
	Probes time.Duration `json:"probes" yaml:"probes"`
	// Holds: negative expectations holding after they first held.
	Holds time.Duration `json:"holds" yaml:"holds"`
	// Checks: the wall time of the expectations' checks (probes, holds, log reads). The probe
	// checks of a step run together on a live mesh, so this is less than their sum.
	Checks time.Duration `json:"checks" yaml:"checks"`
	// Logs: reading access logs until an entry matched.
	Logs     time.Duration `json:"logs" yaml:"logs"`
	Teardown time.Duration `json:"teardown" yaml:"teardown"`
	Wall     time.Duration `json:"wall" yaml:"wall"`
	// ApplyToConverged is, for each step in order, the time from its first action to the proxies
	// holding the change (its actions plus its convergence wait).
	ApplyToConverged []time.Duration `json:"applyToConverged,omitempty" yaml:"applyToConverged,omitempty"`
}

// PhaseBucket sorts a phase name into the breakdown's rows: "cluster create", "image load", "Istio
// install", "stand-in and DNS", "fixtures", "cleanup" or "other". Names are live.Phase's.
//
// A phase that ran together with others says so at the end of its name (", alongside the
// stand-in and DNS"): it gets a row of its own, "(alongside others)", whose time overlaps theirs,
// so the other rows still add up to the wall time.
func PhaseBucket(name string) string {
	if i := strings.Index(name, ", alongside "); i >= 0 {
		base := name[:i]
		if j := strings.Index(base, " ("); j >= 0 {
			base = base[:j]
		}
		return base + " (alongside others)"
	}
	switch {
	case strings.HasPrefix(name, "kind cluster ") && strings.HasSuffix(name, " delete"):
		return "cluster delete"
	case strings.HasPrefix(name, "kind cluster "):
		return "cluster create"
	case strings.HasPrefix(name, "image load"), strings.HasPrefix(name, "stand-in image"):
		return "image build and load"
	case strings.HasPrefix(name, "apply manifests"):
		return "add-on manifests"
	case strings.HasPrefix(name, "Istio install"):
		return "Istio install"
	case strings.HasPrefix(name, "Istio uninstall"):
		return "Istio uninstall"
	case strings.HasPrefix(name, "stand-in"), strings.HasPrefix(name, "cluster DNS"), strings.HasPrefix(name, "control-plane probe"):
		return "stand-in internet and DNS"
	case strings.Contains(name, " fixtures "):
		return "fixtures (within group setup)"
	case strings.HasPrefix(name, "leak check"), strings.HasPrefix(name, "leak-check"), strings.HasPrefix(name, "cleanup"):
		return "leak check and cleanup"
	case strings.HasPrefix(name, "detect"), strings.HasPrefix(name, "NetworkPolicy"):
		return "detection and self-tests"
	default:
		return "other"
	}
}

// MedianApplyToConverged is the median over every step of its apply-to-converged time, and how
// many steps there were.
func (t *Timing) MedianApplyToConverged() (time.Duration, int) {
	var all []time.Duration
	for _, g := range t.Groups {
		all = append(all, g.ApplyToConverged...)
	}
	if len(all) == 0 {
		return 0, 0
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	n := len(all)
	if n%2 == 1 {
		return all[n/2], n
	}
	return (all[n/2-1] + all[n/2]) / 2, n
}

// TimingRow is one line of the breakdown: its label (indented by level) and its value.
type TimingRow struct {
	Label string
	Level int
	Value time.Duration
}

// TimingRows is the run's breakdown: wall time, provisioning by bucket (PhaseBucket), the groups'
// totals by part, the median apply-to-converged, then each group's wall time.
func TimingRows(run *Run) []TimingRow {
	suite := run.Finished.Sub(run.Started)
	t := run.Timing
	if t == nil || t.Wall == 0 {
		return []TimingRow{{Label: "wall time (suite to report)", Value: suite}}
	}
	rows := []TimingRow{{Label: "wall time (start to report)", Value: t.Wall}}
	buckets := map[string]time.Duration{}
	var order []string
	for _, p := range t.Phases {
		b := PhaseBucket(p.Name)
		if _, ok := buckets[b]; !ok {
			order = append(order, b)
		}
		buckets[b] += p.Duration
	}
	for _, b := range order {
		rows = append(rows, TimingRow{Label: b, Level: 1, Value: buckets[b]})
	}
	var sum GroupTiming
	for _, g := range t.Groups {
		sum.Setup += g.Setup
		sum.Actions += g.Actions
		sum.Converge += g.Converge
		sum.Probes += g.Probes
		sum.Holds += g.Holds
		sum.Logs += g.Logs
		sum.Checks += g.Checks
		sum.Teardown += g.Teardown
		sum.Wall += g.Wall
	}
	rows = append(rows, TimingRow{Label: "suite (groups, reports)", Level: 1, Value: suite},
		TimingRow{Label: "groups", Level: 1, Value: sum.Wall},
		TimingRow{Label: "setup (namespaces, fixtures)", Level: 2, Value: sum.Setup},
		TimingRow{Label: "step actions (apply, delete)", Level: 2, Value: sum.Actions},
		TimingRow{Label: "convergence", Level: 2, Value: sum.Converge},
		TimingRow{Label: "checks (wall)", Level: 2, Value: sum.Checks},
		TimingRow{Label: "probes (summed)", Level: 3, Value: sum.Probes},
		TimingRow{Label: "holding windows (summed)", Level: 3, Value: sum.Holds},
		TimingRow{Label: "access-log reads (summed)", Level: 3, Value: sum.Logs},
		TimingRow{Label: "teardown", Level: 2, Value: sum.Teardown})
	if m, n := t.MedianApplyToConverged(); n > 0 {
		rows = append(rows, TimingRow{Label: fmt.Sprintf("median apply-to-converged (%d steps)", n), Level: 1, Value: m})
	}
	for _, g := range t.Groups {
		rows = append(rows, TimingRow{Label: "group " + g.Group, Level: 2, Value: g.Wall})
	}
	return rows
}

// WriteTimings prints the runs' breakdowns side by side, a column per run (headed by its ID): a
// row a run lacks is "-".
func WriteTimings(w io.Writer, runs []*Run) {
	var labels []string
	level := map[string]int{}
	vals := make([]map[string]time.Duration, len(runs))
	for i, run := range runs {
		vals[i] = map[string]time.Duration{}
		for _, row := range TimingRows(run) {
			if _, ok := level[row.Label]; !ok {
				labels = append(labels, row.Label)
				level[row.Label] = row.Level
			}
			vals[i][row.Label] = row.Value
		}
	}
	fmt.Fprintf(w, "%-44s", "")
	for _, run := range runs {
		fmt.Fprintf(w, " %22s", clipID(run.ID, 22))
	}
	fmt.Fprintln(w)
	for _, l := range labels {
		fmt.Fprintf(w, "%-44s", strings.Repeat("  ", level[l])+l)
		for i := range runs {
			v, ok := vals[i][l]
			cell := "-"
			if ok {
				cell = roundFor(v).String()
			}
			fmt.Fprintf(w, " %22s", cell)
		}
		fmt.Fprintln(w)
	}
}

// roundFor keeps a short duration's milliseconds and a long one's tenths of a second.
func roundFor(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func clipID(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n+1:]
}

// PhaseLog passes a progress stream through to W and records the phases live.Phase reports on
// it (live.Phase calls RecordPhase on a writer that has it), for Timing.Phases. Safe for
// concurrent use when W is.
type PhaseLog struct {
	W      io.Writer
	mu     sync.Mutex
	phases []PhaseTime
}

func (l *PhaseLog) Write(p []byte) (int, error) { return l.W.Write(p) }

// RecordPhase records a phase that ended.
func (l *PhaseLog) RecordPhase(name string, d time.Duration, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.phases = append(l.phases, PhaseTime{Name: name, Duration: d, Failed: failed})
}

// Phases returns the phases recorded so far, in the order they ended.
func (l *PhaseLog) Phases() []PhaseTime {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]PhaseTime(nil), l.phases...)
}
