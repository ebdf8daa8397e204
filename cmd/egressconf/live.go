package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"github.com/egressconf/egressconf/pkg/backend/live"
	"github.com/egressconf/egressconf/pkg/catalog"
	"github.com/egressconf/egressconf/pkg/cluster"
	"github.com/egressconf/egressconf/pkg/clusterdns"
	"github.com/egressconf/egressconf/pkg/image"
	"github.com/egressconf/egressconf/pkg/istioinstall"
	"github.com/egressconf/egressconf/pkg/runner"
	"github.com/egressconf/egressconf/pkg/standin"
)

// liveFlags are the flags of --backend kind and --backend existing.
type liveFlags struct {
	clusterName, nodeImage               string
	keepCluster, keep                    bool
	kubeconfig, kubeContext              string
	installIstio, restartCoreDNS         optBool
	istioVersion, istioCharts            string
	istioHub, istioTag, istioPullPolicy  string
	curlImage, nginxImage, standinImage  string
	loadArchives                         stringList
	applyManifests                       stringList
	loadCommand, internet, networkPolicy string
	probeMode                            string
	workDir                              string
	progress                             io.Writer
	timeouts                             runner.Timeouts
	runID                                string
	backendName                          string
	catalog                              *catalog.Catalog
	helmDebug                            bool
	istioProfile                         string
	clusterDNS                           string
	// gateways are the egress gateways the selected scenarios use (nil: all).
	gateways []string
}

func addLiveFlags(fs *pflag.FlagSet) *liveFlags {
	f := &liveFlags{}
	fs.StringVar(&f.clusterName, "cluster-name", cluster.DefaultName, "kind: name of the cluster to create or reuse")
	fs.BoolVar(&f.keepCluster, "keep-cluster", false, "kind: keep the cluster after the run (it is deleted when this run created it)")
	fs.BoolVar(&f.keep, "keep", false, "leave every object, the stand-in, the CoreDNS override and the mesh config in place, and a kind cluster (debugging; use with one --group)")
	fs.StringVar(&f.nodeImage, "node-image", "", "kind: node image (default kind v0.33.0's pinned "+cluster.DefaultNodeImage+")")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "existing: kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&f.kubeContext, "context", "", "existing: kubeconfig context (default the current one)")
	fs.Var(&f.installIstio, "install-istio", "install Istio with Helm (default true for kind, false for existing)")
	fs.StringVar(&f.istioVersion, "istio-version", istioinstall.DefaultVersion, "Istio release whose official charts are installed")
	fs.StringVar(&f.istioCharts, "istio-charts", "", "install from this local charts directory (Istio's manifests/charts) instead of the chart repository")
	fs.StringVar(&f.istioHub, "istio-hub", "", "image hub for Istio's images (global.hub)")
	fs.StringVar(&f.istioTag, "istio-tag", "", "image tag for Istio's images (global.tag)")
	fs.StringVar(&f.istioPullPolicy, "istio-image-pull-policy", "", "imagePullPolicy of Istio's images and injected proxies (Always, IfNotPresent, Never; default IfNotPresent)")
	fs.BoolVar(&f.helmDebug, "helm-debug", false, "print Helm's debug output")
	fs.StringVar(&f.istioProfile, "istio-profile", "auto", "how istiod is configured for the proxy: istio (Istio's own proxy images, Istio's defaults), upstream-envoy (upstream Envoy: metadata exchange, ALPN filter and telemetry off), auto (upstream-envoy when a --load-image-archive is a proxy image labelled "+istioinstall.LabelProxy+"=upstream-envoy, else istio); with --backend sim, the istiod settings the offline control plane runs with")
	fs.StringVar(&f.curlImage, "curl-image", "", "image of the sleep (curl) fixtures (default curlimages/curl:8.11.1)")
	fs.StringVar(&f.nginxImage, "nginx-image", "", "image of the nginx fixture (default nginx:1.27.0)")
	fs.StringVar(&f.standinImage, "standin-image", "", "use this stand-in image as it is (pullable or present); default: build "+standin.DefaultImage+" from source and load it")
	fs.Var(&f.loadArchives, "load-image-archive", "image archive to load into the cluster before the run (repeatable; kind: through the kind library; existing: with --load-command)")
	fs.Var(&f.applyManifests, "apply-manifest", "kind: apply this manifest after the cluster is created and the image archives are loaded, and wait until its DaemonSets and Deployments are ready (repeatable; e.g. a NetworkPolicy enforcer; kept with the cluster)")
	fs.StringVar(&f.loadCommand, "load-command", "", "existing: command that loads an image archive into the cluster's nodes; the archive path replaces {} or is appended (e.g. ../shared/tools/localcluster/load-images.sh)")
	fs.StringVar(&f.probeMode, "probe", live.ProbeCurl, "curl: run curl in the pods (observed through the data plane); xds: predict each request from the xDS istiod sends the pods' proxies (no Envoy needed); curl,xds: both in one run, each check observed with curl (the verdict) and predicted from the live istiod's xDS on the same converged state")
	fs.StringVar(&f.internet, "internet", live.InternetHermetic, "hermetic (the run's stand-in hosts in the cluster) or live (the real sites)")
	fs.StringVar(&f.clusterDNS, "cluster-dns", string(clusterdns.ModeAuto), "hermetic internet: whose DNS resolves the catalog's hosts to the stand-in. scoped: only the run's own pods (fixtures, its DNS check, the egress gateways it installed) resolve through the stand-in's resolver, kube-system/coredns is not touched; override: CoreDNS is changed so that every pod of the cluster does, for the run (printed first and recorded in the reports); auto: override on --backend kind, scoped on existing (a run refuses when a gateway it uses was not installed by it, unless given override)")
	fs.Var(&f.restartCoreDNS, "restart-coredns", "restart CoreDNS's pods after changing its Corefile instead of waiting for its reload (default true for kind, false for existing)")
	fs.StringVar(&f.networkPolicy, "network-policy", "auto", "whether the cluster enforces NetworkPolicy: auto (detect the CNI), yes, no")
	fs.StringVar(&f.workDir, "work-dir", "", "directory for the run's files (the stand-in image archive); default a temporary directory")
	// A bare --install-istio / --restart-coredns means true, as a boolean flag does.
	for _, name := range []string{"install-istio", "restart-coredns"} {
		fs.Lookup(name).NoOptDefVal = "true"
	}
	return f
}

// optBool is a boolean flag that knows whether it was set.
type optBool struct{ set, v bool }

func (o *optBool) String() string {
	if !o.set {
		return ""
	}
	return fmt.Sprint(o.v)
}

func (o *optBool) Set(s string) error {
	switch strings.ToLower(s) {
	case "true", "1", "yes":
		o.v = true
	case "false", "0", "no":
		o.v = false
	default:
		return fmt.Errorf("want true or false, got %q", s)
	}
	o.set = true
	return nil
}

// Type is the value's name in --help: "bool" is shown as a boolean flag (no value).
func (o *optBool) Type() string { return "bool" }

func (o *optBool) or(def bool) bool {
	if o.set {
		return o.v
	}
	return def
}

var labelValueRE = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

// startLive provisions (kind) or connects to (existing) the cluster, installs Istio when asked,
// and prepares the live backend. finish, never nil, undoes it all and runs the leak check; call
// it also when startLive fails.
func startLive(ctx context.Context, f *liveFlags) (b *live.Backend, finish func() error, err error) {
	out := f.progress
	t := f.timeouts
	var undo []func(context.Context) error
	finish = func() error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.Teardown+t.Provision)
		defer cancel()
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](cctx); err != nil {
				errs = append(errs, err)
			}
		}
		undo = nil
		return errors.Join(errs...)
	}
	if !labelValueRE.MatchString(f.runID) {
		return nil, finish, usageError{fmt.Sprintf("--run-id %q: must be a Kubernetes label value (63 characters: letters, digits, '-', '_', '.')", f.runID)}
	}
	if f.internet != live.InternetHermetic && f.internet != live.InternetLive {
		return nil, finish, usageError{fmt.Sprintf("--internet %q: want %s or %s", f.internet, live.InternetHermetic, live.InternetLive)}
	}
	probeMode, err := live.NormalizeProbe(f.probeMode)
	if err != nil {
		// Checked here, before any cluster is touched: a typo must not hide behind a kubeconfig or
		// kind error, nor cost a cluster's creation.
		return nil, finish, usageError{err.Error()}
	}
	if probeMode != live.ProbeCurl && f.internet == live.InternetLive {
		// Predictions answer for the external hosts as the stand-in does; only curl reaches the
		// real sites. Together they would compare the real sites with the stand-in's answers.
		return nil, finish, usageError{fmt.Sprintf("--probe %s predicts the external hosts' answers from the stand-in: it cannot be combined with --internet live (use --probe curl)", f.probeMode)}
	}
	var netpol *bool
	switch f.networkPolicy {
	case "auto":
	case "yes", "true":
		v := true
		netpol = &v
	case "no", "false":
		v := false
		netpol = &v
	default:
		return nil, finish, usageError{fmt.Sprintf("--network-policy %q: want auto, yes or no", f.networkPolicy)}
	}
	dnsMode, err := clusterdns.ParseMode(f.clusterDNS)
	if err != nil {
		return nil, finish, usageError{err.Error()}
	}
	phase := func(name string, fn func() error) error { return live.Phase(out, name, fn) }

	var cfg *rest.Config
	var load func(context.Context, string) error
	opts := live.Options{
		Name: f.backendName, RunID: f.runID, Timeouts: t, CurlImage: f.curlImage, NginxImage: f.nginxImage,
		Internet: f.internet, StandinImage: f.standinImage, NetworkPolicy: netpol, Keep: f.keep,
		Progress: out, WorkDir: f.workDir, Probe: probeMode, ClusterDNS: dnsMode, Gateways: f.gateways,
	}
	if f.catalog != nil {
		opts.Hosts = f.catalog.Hosts
	}
	install := f.installIstio.or(f.backendName == "kind")
	profile, why, err := resolveProfile(f.istioProfile, f.loadArchives)
	if err != nil {
		return nil, finish, err
	}
	fmt.Fprintf(out, "   Istio profile: %s (%s)\n", profile, why)
	opts.IstioProfile = string(profile)
	ic := istioinstall.Options{
		Version: f.istioVersion, ChartsDir: f.istioCharts, Hub: f.istioHub, Tag: f.istioTag,
		ImagePullPolicy: f.istioPullPolicy, Timeout: t.Provision, Progress: out, Profile: profile,
	}
	if f.helmDebug {
		ic.HelmLog = out
	}

	switch f.backendName {
	case "kind":
		if f.kubeconfig != "" || f.kubeContext != "" {
			return nil, finish, usageError{"--kubeconfig and --context are for --backend existing"}
		}
		var c *cluster.Cluster
		if err := phase("kind cluster "+f.clusterName, func() (err error) {
			c, err = cluster.Create(ctx, f.clusterName, cluster.CreateWithNodeImage(f.nodeImage),
				cluster.CreateWithWaitForReady(t.Provision), cluster.CreateWithLog(out))
			if err == nil && !c.Created {
				fmt.Fprintf(out, "   reusing the existing cluster %s\n", c.Name)
			}
			return err
		}); err != nil {
			return nil, finish, err
		}
		undo = append(undo, func(ctx context.Context) error {
			if f.keepCluster || f.keep || !c.Created {
				fmt.Fprintf(out, "== kind cluster %s kept (kubectl --context %s)\n", c.Name, c.Context())
				return nil
			}
			return phase("kind cluster "+c.Name+" delete", func() error { return c.Delete(ctx) })
		})
		if cfg, err = c.RESTConfig(); err != nil {
			return nil, finish, err
		}
		load = c.LoadImageArchive
	case "existing":
		if f.keepCluster || f.nodeImage != "" {
			return nil, finish, usageError{"--keep-cluster and --node-image are for --backend kind"}
		}
		if cfg, err = existingConfig(ctx, f.kubeconfig, f.kubeContext); err != nil {
			return nil, finish, err
		}
		if f.loadCommand != "" {
			load = commandLoader(f.loadCommand, out)
		}
	default:
		return nil, finish, usageError{fmt.Sprintf("unknown live backend %q", f.backendName)}
	}
	if len(f.loadArchives) > 0 && load == nil {
		return nil, finish, usageError{"--load-image-archive on an existing cluster needs --load-command"}
	}
	if f.backendName == "kind" && len(f.loadArchives) > 1 {
		// Each archive is imported into the node's containerd on its own: together they take the
		// longest one's time, not the sum (about 20 s to 11 s for CI's five archives here).
		name := fmt.Sprintf("image loads (%d archives, together)", len(f.loadArchives))
		if err := phase(name, func() error { return loadTogether(ctx, load, f.loadArchives, out) }); err != nil {
			return nil, finish, err
		}
	} else {
		// A --load-command is the user's: one at a time, as they would run it.
		for _, a := range f.loadArchives {
			if err := phase("image load "+a, func() error { return load(ctx, a) }); err != nil {
				return nil, finish, err
			}
		}
	}
	if len(f.applyManifests) > 0 {
		if f.backendName != "kind" {
			return nil, finish, usageError{"--apply-manifest is for --backend kind (a cluster egressconf creates)"}
		}
		if err := applyManifests(ctx, cfg, f.applyManifests, t, out); err != nil {
			return nil, finish, err
		}
	}
	opts.Config = cfg
	opts.LoadImage = load
	opts.RestartCoreDNS = f.restartCoreDNS.or(f.backendName == "kind")
	if f.internet == live.InternetHermetic && f.standinImage == "" {
		if load == nil {
			return nil, finish, usageError{"the hermetic internet needs the stand-in image in the cluster: give --load-command (egressconf builds and loads it) or --standin-image REF (an image the cluster can pull)"}
		}
		opts.BuildStandinImage = true
	}

	// kind: Istio is part of the cluster (kept with it); the leak check's baseline comes after.
	if install && f.backendName == "kind" {
		if err := phase("Istio install", func() error { return installIstio(ctx, cfg, ic, out) }); err != nil {
			return nil, finish, err
		}
	}
	if err := phase("leak-check baseline", func() (err error) { b, err = live.New(ctx, opts); return err }); err != nil {
		return nil, finish, err
	}
	// Close this backend, not the result b: a failure below returns nil for it before finish runs.
	lb := b
	undo = append(undo, func(ctx context.Context) error { return lb.Close(ctx) })
	// existing: an Istio this run installed is uninstalled before the leak check.
	if install && f.backendName == "existing" {
		var res *istioinstall.Result
		err := phase("Istio install", func() (err error) {
			res, err = istioinstall.Install(ctx, cfg, withRunLabel(ic, f.runID))
			return err
		})
		if res != nil && !f.keep {
			b.AddCleanup("Istio uninstall", func(ctx context.Context) error { return istioinstall.Uninstall(ctx, cfg, res, ic) })
		}
		if err != nil {
			return nil, finish, err
		}
	}
	if err := b.Prepare(ctx); err != nil {
		return nil, finish, err
	}
	fmt.Fprint(out, indent(b.Plan(f.catalog)))
	return b, finish, nil
}

// loadTogether loads every archive at once, saying when each is done, and returns every failure,
// each naming its archive.
func loadTogether(ctx context.Context, load func(context.Context, string) error, archives []string, out io.Writer) error {
	errs := make([]error, len(archives))
	var wg sync.WaitGroup
	for i, a := range archives {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if err := load(ctx, a); err != nil {
				errs[i] = fmt.Errorf("image load %s: %w", a, err)
				return
			}
			fmt.Fprintf(out, "   loaded %s (%s)\n", a, time.Since(start).Round(time.Millisecond))
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// resolveProfile turns --istio-profile into a profile and says why: auto takes the profile a loaded
// proxy image's labels name (the image internal/testmesh builds runs upstream Envoy), else istio.
func resolveProfile(flagValue string, archives []string) (istioinstall.Profile, string, error) {
	if flagValue != "auto" {
		p, err := istioinstall.ParseProfile(flagValue)
		if err != nil {
			return "", "", usageError{"--istio-profile: " + err.Error() + ", or \"auto\""}
		}
		return p, "--istio-profile", nil
	}
	for _, a := range archives {
		labels, err := image.ArchiveLabels(a)
		if err != nil {
			return "", "", fmt.Errorf("--istio-profile auto: reading --load-image-archive %s: %w", a, err)
		}
		if p, ok := istioinstall.ProfileForImage(labels); ok {
			return p, fmt.Sprintf("auto: %s is labelled %s=%s", a, istioinstall.LabelProxy, labels[istioinstall.LabelProxy]), nil
		}
	}
	return istioinstall.DefaultProfile, "auto: no loaded proxy image names another", nil
}

func installIstio(ctx context.Context, cfg *rest.Config, ic istioinstall.Options, out io.Writer) error {
	res, err := istioinstall.Install(ctx, cfg, ic)
	if res != nil {
		fmt.Fprintf(out, "   charts: %s\n", res.Source)
	}
	return err
}

func withRunLabel(ic istioinstall.Options, runID string) istioinstall.Options {
	ic.Labels = map[string]string{"egressconf.io/run": runID}
	return ic
}

// commandLoader runs the user's load command for an archive: {} is replaced by the path, or the
// path is appended.
func commandLoader(command string, out io.Writer) func(context.Context, string) error {
	return func(ctx context.Context, archive string) error {
		args := strings.Fields(command)
		replaced := false
		for i, a := range args {
			if strings.Contains(a, "{}") {
				args[i] = strings.ReplaceAll(a, "{}", archive)
				replaced = true
			}
		}
		if !replaced {
			args = append(args, archive)
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		var buf strings.Builder
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(buf.String()))
		}
		return nil
	}
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return "   " + strings.Join(lines, "\n   ") + "\n"
}
