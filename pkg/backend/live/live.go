// Package live is the backend for a real cluster with a real Istio: kind clusters egressconf
// provisions (pkg/cluster, pkg/istioinstall) and existing clusters a kubeconfig names. Everything
// goes through client-go:
//
//   - objects are created with the ownership labels (fixtures.LabelManagedBy=egressconf,
//     egressconf.io/run=<run>); an existing object without this run's label is never overwritten;
//     a scenario's objects are deleted in reverse order at its teardown;
//   - the mesh's outboundTrafficPolicy is changed in istiod's mesh config (ConfigMap
//     istio-system/istio, key mesh) and put back byte for byte;
//   - probes exec curl in the workload's app container (remotecommand) and parse its output
//     (pkg/probe); a probe that did not run is an error, never an outcome;
//   - convergence polls istiod (exec `pilot-discovery request GET /debug/...` in its pod) until it
//     has every change and the proxies involved have ACKed what it sent;
//   - a sidecar or gateway without Envoy (pilot-agent answers, no Envoy admin behind it) never gives
//     a mesh outcome: checks from or through it are unobservable, reported as skipped;
//   - the run's stand-in internet (pkg/standin, pkg/image, pkg/clusterdns) is set up by Prepare and
//     removed by Close, which then checks that nothing the run created is left.
package live

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/backend"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/clusterdns"
	"github.com/egressconf/egressconf/pkg/runner"
	"github.com/egressconf/egressconf/pkg/standin"
)

// Internet modes.
const (
	// InternetHermetic serves the external hosts from the run's stand-in inside the cluster.
	InternetHermetic = "hermetic"
	// InternetLive lets requests reach the real sites (never the default).
	InternetLive = "live"
)

// IstioNamespace is where istiod and its mesh config live.
const IstioNamespace = "istio-system"

// Options configure a live backend.
type Options struct {
	// Name is the backend's flag value: kind or existing.
	Name string
	// Config reaches the cluster.
	Config *rest.Config
	// RunID labels every object of the run (egressconf.io/run).
	RunID    string
	Timeouts runner.Timeouts
	// CurlImage and NginxImage override the fixtures' images.
	CurlImage, NginxImage string
	// Internet is InternetHermetic (default) or InternetLive.
	Internet string
	// Hosts are the external hosts the run's stand-in serves and its DNS resolves to it (the
	// catalog's: catalog.Catalog.Hosts). Required for a hermetic run and for the control-plane probe.
	Hosts []standin.Host
	// StandinImage is the stand-in's image reference (standin.DefaultImage when empty).
	StandinImage string
	// BuildStandinImage builds the stand-in image from this module's source (pkg/image) and
	// loads it with LoadImage. Without it the image must already be pullable or present.
	BuildStandinImage bool
	// LoadImage loads an image archive into the cluster's nodes (the kind library, or a
	// user-given command for other clusters).
	LoadImage func(ctx context.Context, archive string) error
	// RestartCoreDNS restarts CoreDNS's pods after changing its Corefile, instead of waiting for
	// its reload plugin (fine on a cluster egressconf created).
	RestartCoreDNS bool
	// NetworkPolicy says whether the cluster enforces NetworkPolicy; nil detects it from the CNI.
	NetworkPolicy *bool
	// Keep leaves everything in place at teardown and close, for debugging.
	Keep bool
	// Progress receives the provisioning phases and cleanup lines; nil discards.
	Progress io.Writer
	// WorkDir holds files of the run (the stand-in image archive); a temporary directory when empty.
	WorkDir string
	// IstioProfile names the install profile istiod runs with (istioinstall.Profile), for reports.
	IstioProfile string
	// ClusterDNS is the --cluster-dns policy of a hermetic run (clusterdns.Decide): scoped
	// (the run's pods only) or override (CoreDNS, cluster-wide); auto when empty.
	ClusterDNS clusterdns.Mode
	// Gateways are the egress gateways the selected scenarios use (nil: every fixture gateway).
	Gateways []string
	// Probe is ProbeCurl (default: curl in the pods, observed through the data plane), ProbeXDS
	// (predicted from the xDS istiod sends each pod's proxy) or ProbeBoth (observed, and
	// predicted beside each observation).
	Probe string
}

// Backend is the live backend. One scenario at a time.
type Backend struct {
	o   Options
	cfg *rest.Config
	cs  kubernetes.Interface
	dyn dynamic.Interface
	// istio is Istio's typed clientset, for the objects the backend writes itself (the sentinel).
	istio istioclient.Interface
	// quietDyn lists every resource type for the leak check, without the API server's deprecation
	// warnings (v1 ComponentStatus, v1 Endpoints) on the output.
	quietDyn dynamic.Interface
	mapper   meta.RESTMapper
	disc     discovery.CachedDiscoveryInterface

	mu   sync.Mutex
	info backend.Info

	// gateways holds what Prepare found for each fixture gateway.
	gateways map[string]*gatewayState
	// istiodImage is the image of istiod's discovery container.
	istiodImage string

	baseline *snapshot
	// run-level state, set up by Prepare and undone by Close.
	standin    *standin.InCluster
	dnsRestore func(context.Context) error
	// dns is the stand-in's resolver for the run's pods with scoped DNS (nil: cluster DNS).
	dns        *fixtures.DNS
	runObjects []objRef
	mesh       meshState
	cleanups   []cleanup
	closed     bool
	// tempDir is the work directory Backend made (removed by Close).
	tempDir string

	// sc is the current scenario's state (nil between scenarios).
	sc *scenarioState
	// carry is what the last scenario's teardown left for the next one (carry.go).
	carry *carried
	// terminating are namespaces deleted without waiting (Close waits for them).
	terminating []string
	// xds is the control-plane probe's state with Probe == ProbeXDS or ProbeBoth.
	xds *xdsMode
	// sentinelGen is the sentinel generation last applied (0: none yet).
	sentinelGen int
	// marks are the run's curl probes, for tying access-log entries to them.
	marks probeMarks
}

type cleanup struct {
	name string
	f    func(context.Context) error
}

// New connects to the cluster and records the baseline the leak check compares with (namespaces,
// labelled objects, CoreDNS's Corefile, istiod's mesh config). It changes nothing.
func New(ctx context.Context, o Options) (_ *Backend, err error) {
	defer explain(&err)
	if o.Config == nil {
		return nil, errors.New("live: no cluster configuration")
	}
	if o.RunID == "" {
		return nil, errors.New("live: a run ID is required")
	}
	if o.Timeouts == (runner.Timeouts{}) {
		o.Timeouts = runner.DefaultTimeouts()
	}
	if o.Timeouts.Poll <= 0 {
		o.Timeouts.Poll = 500 * time.Millisecond
	}
	if o.Internet == "" {
		o.Internet = InternetHermetic
	}
	if o.Internet != InternetHermetic && o.Internet != InternetLive {
		return nil, fmt.Errorf("live: --internet %q: want %s or %s", o.Internet, InternetHermetic, InternetLive)
	}
	if o.StandinImage == "" {
		o.StandinImage = standin.DefaultImage
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	cfg := rest.CopyConfig(o.Config)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	// The API server's warnings (Istio's validation of an applied object, for one) go to the
	// progress output as lines of their own, not through klog.
	cfg.WarningHandler = warningWriter{o.Progress}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ic, err := istioclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	qcfg := rest.CopyConfig(cfg)
	qcfg.WarningHandler = rest.NoWarnings{}
	quiet, err := dynamic.NewForConfig(qcfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disc := memory.NewMemCacheClient(dc)
	b := &Backend{
		o: o, cfg: cfg, cs: cs, dyn: dyn, istio: ic, quietDyn: quiet, disc: disc,
		mapper:   restmapper.NewDeferredDiscoveryRESTMapper(disc),
		gateways: map[string]*gatewayState{},
	}
	b.info = backend.Info{Name: o.Name, Oracle: backend.OracleLiveDataPlane, Capabilities: map[string]bool{}}
	probe, err := NormalizeProbe(o.Probe)
	if err != nil {
		return nil, fmt.Errorf("live: %w", err)
	}
	b.o.Probe = probe
	switch probe {
	case ProbeXDS:
		// Predictions from a live istiod's xDS: exact convergence, a deterministic model.
		b.info.Oracle, b.info.Deterministic = backend.OracleLiveControlPlane, true
	case ProbeBoth:
		// Observed with curl (the verdict), predicted from the xDS beside it (backend.Predictor).
		if o.Internet == InternetLive {
			return nil, fmt.Errorf("live: --probe %s predicts the external hosts' answers from the stand-in: it cannot be combined with --internet %s", ProbeBoth, InternetLive)
		}
	}
	if b.baseline, err = b.snapshot(ctx); err != nil {
		return nil, fmt.Errorf("live: baseline for the leak check: %w", err)
	}
	return b, nil
}

// Info implements backend.Backend. Prepare fills in the Istio version and capabilities.
func (b *Backend) Info() backend.Info {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.info
}

// Prepare readies the cluster for the run: it detects Istio and the egress gateways, and (in
// hermetic mode) builds and loads the stand-in image, deploys the stand-in, points CoreDNS at it
// and waits until a pod resolves the external hosts to it. Each phase prints one line with its
// duration. Call Close afterwards, also when Prepare fails.
func (b *Backend) Prepare(ctx context.Context) (err error) {
	defer explain(&err)
	if err := b.phase("detect Istio and egress gateways", func() error { return b.detect(ctx) }); err != nil {
		return err
	}
	if b.o.Internet == InternetLive {
		if err := b.checkNetworkPolicy(ctx, ""); err != nil {
			return err
		}
		fmt.Fprintf(b.o.Progress, "   internet: live (requests reach the real sites)\n")
		return nil
	}
	// The self-test works in a namespace of its own, between pods without sidecars, by IP: it
	// runs alongside the stand-in and the DNS override, which it does not touch.
	selfTest := make(chan error, 1)
	go func() { selfTest <- b.checkNetworkPolicy(ctx, ", alongside the stand-in and DNS") }()
	err = b.prepareHermetic(ctx)
	if err := errors.Join(err, <-selfTest); err != nil {
		return err
	}
	if b.o.Probe == ProbeXDS || b.o.Probe == ProbeBoth {
		return b.phase("control-plane probe (port-forward to istiod's xDS)", func() error { return b.startXDS(ctx) })
	}
	return nil
}

// AddCleanup registers f to run in Close after the run's own cleanup and before the leak check
// (cleanups run in reverse order of registration), e.g. uninstalling an Istio the run installed.
func (b *Backend) AddCleanup(name string, f func(context.Context) error) {
	b.cleanups = append(b.cleanups, cleanup{name, f})
}

// Close undoes what the run set up: the current scenario if its teardown did not run, the
// stand-in, the CoreDNS override, the CA secrets, the mesh config, then the registered cleanups;
// then it runs the leak check. With Keep it leaves everything and skips the leak check. It is
// safe to call more than once and after a failed Prepare.
func (b *Backend) Close(ctx context.Context) (err error) {
	defer explain(&err)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	if b.o.Keep {
		fmt.Fprintf(b.o.Progress, "== --keep: leaving the run's objects, stand-in, CoreDNS override and mesh config in place (run %s)\n", b.o.RunID)
		return nil
	}
	start := time.Now()
	var errs []error
	if b.sc != nil {
		if err := b.Teardown(ctx, b.sc.s); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.dropAllCarried(ctx); err != nil {
		errs = append(errs, err)
	}
	if b.dnsRestore != nil {
		if err := b.dnsRestore(ctx); err != nil {
			errs = append(errs, err)
		} else {
			b.dnsRestore = nil
			if b.o.RestartCoreDNS {
				if err := b.restartCoreDNS(ctx); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if err := b.deleteRefs(ctx, b.runObjects); err != nil {
		errs = append(errs, err)
	}
	b.runObjects = nil
	if b.standin != nil {
		if err := b.standin.Delete(ctx, b.cs); err != nil {
			errs = append(errs, err)
		}
		if err := b.waitNamespacesGone(ctx, []string{standin.Namespace}); err != nil {
			errs = append(errs, err)
		}
		b.standin = nil
	}
	if err := b.restoreMesh(ctx); err != nil {
		errs = append(errs, err)
	}
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		c := b.cleanups[i]
		s := time.Now()
		if err := c.f(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		} else {
			fmt.Fprintf(b.o.Progress, "   %s %s\n", c.name, since(s))
		}
	}
	b.cleanups = nil
	if b.tempDir != "" {
		_ = os.RemoveAll(b.tempDir)
	}
	fmt.Fprintf(b.o.Progress, "== cleanup of run %s %s\n", b.o.RunID, since(start))
	if err := b.phase("leak check", func() error { return b.leakCheck(ctx) }); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// PhaseTick is how often Phase says that a phase is still running: often enough that a slow
// cluster create, image load or Istio install never looks hung, rarely enough not to flood.
const PhaseTick = 20 * time.Second

// Phase runs f as a provisioning phase: "== NAME …" when it starts, "   … NAME still running
// (40s)" every PhaseTick while it runs, and "== NAME 12.3s" (or "== NAME FAILED after 1.2s:
// ERROR") when it ends. The error is wrapped with the name.
func Phase(w io.Writer, name string, f func() error) error { return PhaseEvery(w, name, PhaseTick, f) }

// phaseRecorder is a progress writer that also keeps each phase's duration (report.PhaseLog).
type phaseRecorder interface {
	RecordPhase(name string, d time.Duration, failed bool)
}

// PhaseEvery is Phase saying "still running" every interval (none when interval <= 0). The
// lines come from another goroutine while f runs: if f writes to w too, w must be safe for
// concurrent use (os.Stdout is).
func PhaseEvery(w io.Writer, name string, interval time.Duration, f func() error) error {
	start := time.Now()
	fmt.Fprintf(w, "== %s …\n", name)
	done := make(chan struct{})
	ticking := make(chan struct{})
	go func() {
		defer close(ticking)
		if interval <= 0 {
			return
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(w, "   … %s still running (%s)\n", name, time.Since(start).Round(time.Second))
			}
		}
	}()
	err := f()
	close(done)
	<-ticking // no "still running" after the end line
	if rec, ok := w.(phaseRecorder); ok {
		rec.RecordPhase(name, time.Since(start), err != nil)
	}
	if err != nil {
		fmt.Fprintf(w, "== %s FAILED after %s: %v\n", name, since(start), err)
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(w, "== %s %s\n", name, since(start))
	return nil
}

// phase is Phase on the run's progress, its failure line saying which permission was denied.
func (b *Backend) phase(name string, f func() error) error {
	return Phase(b.o.Progress, name, func() (err error) { defer explain(&err); return f() })
}

// Plan says which scenarios of c can run here and why the others cannot: a missing egress gateway
// skips a scenario; a gateway without Envoy makes its log checks unobservable.
func (b *Backend) Plan(c *catalog.Catalog) string {
	var sb strings.Builder
	names := make([]string, 0, len(b.gateways))
	for n := range b.gateways {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(&sb, "Istio: %s\n", b.info.IstioVersion)
	for _, n := range names {
		g := b.gateways[n]
		switch {
		case !g.present:
			fmt.Fprintf(&sb, "gateway %s: missing (%s)\n", g.gw.Ref(), g.missing)
		case g.noEnvoy != "":
			fmt.Fprintf(&sb, "gateway %s: present, %s\n", g.gw.Ref(), g.noEnvoy)
		default:
			fmt.Fprintf(&sb, "gateway %s: present, Envoy running\n", g.gw.Ref())
		}
	}
	for _, s := range c.Scenarios {
		if why := b.missingGateways(s); why != "" {
			fmt.Fprintf(&sb, "%-4s %-32s cannot run: %s\n", s.Metadata.Group, s.Metadata.Name, why)
		} else {
			fmt.Fprintf(&sb, "%-4s %-32s can run\n", s.Metadata.Group, s.Metadata.Name)
		}
	}
	return sb.String()
}

func (b *Backend) labels() map[string]string {
	return map[string]string{fixtures.LabelManagedBy: fixtures.ManagedBy, fixtures.LabelRun: b.o.RunID}
}

func (b *Backend) fixtureOptions() fixtures.Options {
	return fixtures.Options{RunID: b.o.RunID, CurlImage: b.o.CurlImage, NginxImage: b.o.NginxImage, HTTPBinImage: b.o.StandinImage, TrustRunCA: b.o.Internet == InternetHermetic, DNS: b.dns}
}

func (b *Backend) workDir() (string, error) {
	if b.o.WorkDir != "" {
		return b.o.WorkDir, os.MkdirAll(b.o.WorkDir, 0o755)
	}
	d, err := os.MkdirTemp("", "egressconf-"+b.o.RunID+"-")
	if err != nil {
		return "", err
	}
	b.o.WorkDir, b.tempDir = d, d
	return d, nil
}

// warningWriter prints the API server's warnings.
type warningWriter struct{ w io.Writer }

func (ww warningWriter) HandleWarningHeader(code int, agent, text string) {
	if code == 299 && text != "" {
		fmt.Fprintf(ww.w, "   warning from the API server: %s\n", text)
	}
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
