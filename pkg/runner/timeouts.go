package runner

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Timeouts is every time bound of a run in one place. Flags override each (see AddFlags).
// The runner never sleeps a fixed time: it polls a condition, and these bound the polling.
type Timeouts struct {
	// Setup bounds creating a scenario's namespaces and workloads until their pods are ready.
	Setup time.Duration
	// Converge bounds waiting for the proxies involved to have a change (istiod sync status,
	// config dump, or an xDS push).
	Converge time.Duration
	// Eventually bounds waiting for an expectation to first hold after convergence (a live mesh may
	// still be draining old connections).
	Eventually time.Duration
	// PositiveSuccesses is how many probes in a row a positive expectation (a 2xx/3xx) needs.
	PositiveSuccesses int
	// NegativeHold is how long a negative expectation (403, 502, reset, timeout) must keep holding
	// once it first holds.
	NegativeHold time.Duration
	// ProbeInterval is the pause between two probes of the same check.
	ProbeInterval time.Duration
	// ProbeConnect bounds curl's connection setup (--connect-timeout).
	ProbeConnect time.Duration
	// ProbeMax bounds one curl run (--max-time).
	ProbeMax time.Duration
	// AccessLog bounds waiting for an access-log entry to be flushed and readable.
	AccessLog time.Duration
	// Teardown bounds deleting a scenario's objects and restoring mesh settings.
	Teardown time.Duration
	// Provision bounds each provisioning phase of a live run: creating the kind cluster, installing
	// Istio, deploying the stand-in internet and waiting for cluster DNS to answer with it.
	Provision time.Duration
	// Poll is the pause between two polls of a condition (pods ready, istiod has a change, proxies
	// in sync, DNS answering).
	Poll time.Duration
}

// DefaultTimeouts suit a kind cluster on a laptop.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Setup:             5 * time.Minute,
		Converge:          60 * time.Second,
		Eventually:        30 * time.Second,
		PositiveSuccesses: 3,
		NegativeHold:      5 * time.Second,
		ProbeInterval:     time.Second,
		ProbeConnect:      5 * time.Second,
		ProbeMax:          10 * time.Second,
		AccessLog:         20 * time.Second,
		Teardown:          3 * time.Minute,
		Provision:         10 * time.Minute,
		Poll:              500 * time.Millisecond,
	}
}

// AddFlags registers a flag for each timeout on fs, defaulting to the current values.
func (t *Timeouts) AddFlags(fs *flag.FlagSet) {
	fs.DurationVar(&t.Setup, "timeout-setup", t.Setup, "bound on creating a scenario's namespaces and workloads")
	fs.DurationVar(&t.Converge, "timeout-converge", t.Converge, "bound on waiting for proxies to receive a change")
	fs.DurationVar(&t.Eventually, "timeout-eventually", t.Eventually, "bound on an expectation first holding after convergence")
	fs.IntVar(&t.PositiveSuccesses, "positive-successes", t.PositiveSuccesses, "probes in a row a positive expectation needs")
	fs.DurationVar(&t.NegativeHold, "negative-hold", t.NegativeHold, "how long a negative expectation must keep holding")
	fs.DurationVar(&t.ProbeInterval, "probe-interval", t.ProbeInterval, "pause between probes of one check")
	fs.DurationVar(&t.ProbeConnect, "probe-connect-timeout", t.ProbeConnect, "curl --connect-timeout")
	fs.DurationVar(&t.ProbeMax, "probe-max-time", t.ProbeMax, "curl --max-time")
	fs.DurationVar(&t.AccessLog, "timeout-access-log", t.AccessLog, "bound on an access-log entry appearing")
	fs.DurationVar(&t.Teardown, "timeout-teardown", t.Teardown, "bound on deleting a scenario's objects")
	fs.DurationVar(&t.Provision, "timeout-provision", t.Provision, "bound on each provisioning phase (cluster, Istio, stand-in, DNS)")
	fs.DurationVar(&t.Poll, "poll-interval", t.Poll, "pause between two polls of a condition")
}

// Validate refuses settings that would make a verdict meaningless: a zero or negative bound or
// pause, fewer than one success for a positive, no holding window for a negative, a connect bound
// beyond the whole request's. Each error names the flag.
func (t Timeouts) Validate() error {
	var errs []error
	for _, d := range (&t).durations() {
		if *d.v <= 0 {
			errs = append(errs, fmt.Errorf("--%s %s: must be a positive duration (%s)", d.flag, *d.v, d.usage))
		}
	}
	if t.PositiveSuccesses < 1 || t.PositiveSuccesses > 1000 {
		errs = append(errs, fmt.Errorf("--positive-successes %d: must be between 1 and 1000 (probes in a row a positive expectation needs)", t.PositiveSuccesses))
	}
	if t.ProbeConnect > 0 && t.ProbeMax > 0 && t.ProbeConnect > t.ProbeMax {
		errs = append(errs, fmt.Errorf("--probe-connect-timeout %s is longer than --probe-max-time %s", t.ProbeConnect, t.ProbeMax))
	}
	return errors.Join(errs...)
}

// Settings are the values of every setting by flag name, as the reports record them.
func (t Timeouts) Settings() map[string]string {
	fs := flag.NewFlagSet("settings", flag.ContinueOnError)
	c := t
	c.AddFlags(fs)
	out := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { out[f.Name] = f.Value.String() })
	return out
}

type durationSetting struct {
	flag, usage string
	v           *time.Duration
}

func (t *Timeouts) durations() []durationSetting {
	fs := flag.NewFlagSet("durations", flag.ContinueOnError)
	c := *t
	c.AddFlags(fs)
	ptrs := map[string]*time.Duration{
		"timeout-setup": &t.Setup, "timeout-converge": &t.Converge, "timeout-eventually": &t.Eventually,
		"negative-hold": &t.NegativeHold, "probe-interval": &t.ProbeInterval, "probe-connect-timeout": &t.ProbeConnect,
		"probe-max-time": &t.ProbeMax, "timeout-access-log": &t.AccessLog, "timeout-teardown": &t.Teardown,
		"timeout-provision": &t.Provision, "poll-interval": &t.Poll,
	}
	var out []durationSetting
	fs.VisitAll(func(f *flag.Flag) {
		if p, ok := ptrs[f.Name]; ok {
			out = append(out, durationSetting{flag: f.Name, usage: f.Usage, v: p})
		}
	})
	return out
}
