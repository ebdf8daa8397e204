// Package istioinstall installs Istio from its official Helm charts through the Helm Go SDK
// (helm.sh/helm/v3): the base chart, istiod (istio-discovery) and one gateway chart release per
// egress gateway the scenarios need (fixtures.Gateways), with access logs on stdout in JSON with the
// fields the log expectations read.
//
// Charts come from Istio's release repository at a pinned version (DefaultVersion, overridable),
// or from a local directory laid out as Istio's manifests/charts (base/, istio-control/
// istio-discovery/ or istiod/, gateway/) for air-gapped use; hub, tag and imagePullPolicy
// override the images.
package istioinstall

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/storage/driver"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/internal/poll"
)

// DefaultVersion is the Istio release installed when no version is given: the release of the
// istio.io/api and istio.io/client-go modules (v1.31.1) egressconf is built against.
const DefaultVersion = "1.31.1"

// DefaultRepoURL is Istio's official Helm chart repository.
const DefaultRepoURL = "https://istio-release.storage.googleapis.com/charts"

// DefaultImagePullPolicy is the images' pull policy when none is given.
const DefaultImagePullPolicy = "IfNotPresent"

// Namespace is where base and istiod are installed.
const Namespace = "istio-system"

// Release names.
const (
	ReleaseBase   = "istio-base"
	ReleaseIstiod = "istiod"
)

// Options of an install.
type Options struct {
	// Version of Istio's charts from RepoURL (DefaultVersion when empty). Ignored with ChartsDir.
	Version string
	// RepoURL is the chart repository (DefaultRepoURL when empty).
	RepoURL string
	// ChartsDir is a local copy of Istio's manifests/charts: no download.
	ChartsDir string
	// Hub and Tag override the images (global.hub, global.tag); empty keeps the charts' defaults.
	Hub, Tag string
	// ImagePullPolicy of istiod, the gateways and the injected sidecars (global.imagePullPolicy;
	// DefaultImagePullPolicy when empty: the gateway injection template would otherwise pull
	// every tag that is not a release, "Always", which fails without a registry).
	ImagePullPolicy string
	// Profile configures istiod for the proxy the images carry (DefaultProfile, ProfileIstio,
	// when empty; ProfileUpstreamEnvoy for upstream Envoy). ParseProfile reads a name.
	Profile Profile
	// Gateways to install, each as a gateway chart release named after it in its namespace
	// (default: every fixtures.Gateways entry).
	Gateways []fixtures.Gateway
	// Labels are added to every object the charts render (a Helm post-renderer).
	Labels map[string]string
	// Timeout bounds each release becoming ready (default 5 minutes).
	Timeout time.Duration
	// Progress receives one line per phase with its duration; nil discards.
	Progress io.Writer
	// HelmLog receives Helm's debug output; nil discards.
	HelmLog io.Writer
}

func (o *Options) defaults() {
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.RepoURL == "" {
		o.RepoURL = DefaultRepoURL
	}
	if o.ImagePullPolicy == "" {
		o.ImagePullPolicy = DefaultImagePullPolicy
	}
	if o.Profile == "" {
		o.Profile = DefaultProfile
	}
	if o.Gateways == nil {
		for _, n := range fixtures.GatewayNames() {
			o.Gateways = append(o.Gateways, fixtures.Gateways[n])
		}
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.HelmLog == nil {
		o.HelmLog = io.Discard
	}
}

// Release is one Helm release of an install.
type Release struct {
	Name, Namespace, Chart, ChartVersion string
}

// Result describes what Install did.
type Result struct {
	// Source is where the charts came from (a directory, or the repository and version).
	Source   string
	Releases []Release
	// CreatedNamespaces are the namespaces Install created (Uninstall deletes them).
	CreatedNamespaces []string
}

// chartSpec names a chart in a local charts directory (candidate paths) and in the repository.
type chartSpec struct {
	local []string
	repo  string
}

var (
	baseChart    = chartSpec{local: []string{"base"}, repo: "base"}
	istiodChart  = chartSpec{local: []string{"istio-control/istio-discovery", "istiod"}, repo: "istiod"}
	gatewayChart = chartSpec{local: []string{"gateway"}, repo: "gateway"}
)

// Install installs base, istiod and the gateways, waiting for each to be ready. A release that
// already exists is left as it is (reported in the progress), so a kept cluster can be reused.
func Install(ctx context.Context, cfg *rest.Config, o Options) (*Result, error) {
	o.defaults()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	res := &Result{Source: fmt.Sprintf("%s (Istio %s)", o.RepoURL, o.Version)}
	if o.ChartsDir != "" {
		res.Source = o.ChartsDir
	}
	install := func(spec chartSpec, name, ns string, values map[string]any) error {
		start := time.Now()
		if exists, err := nsExists(ctx, cs, ns); err != nil {
			return err
		} else if !exists && !slices.Contains(res.CreatedNamespaces, ns) {
			res.CreatedNamespaces = append(res.CreatedNamespaces, ns)
		}
		ch, err := o.loadChart(spec)
		if err != nil {
			return err
		}
		ac, err := o.actionConfig(cfg, ns)
		if err != nil {
			return err
		}
		if _, err := action.NewGet(ac).Run(name); err == nil {
			fmt.Fprintf(o.Progress, "   helm release %s/%s exists: kept as it is\n", ns, name)
			res.Releases = append(res.Releases, Release{Name: name, Namespace: ns, Chart: ch.Metadata.Name, ChartVersion: ch.Metadata.Version})
			return nil
		} else if !errors.Is(err, driver.ErrReleaseNotFound) {
			return fmt.Errorf("helm: release %s/%s: %w", ns, name, err)
		}
		in := action.NewInstall(ac)
		in.ReleaseName, in.Namespace, in.CreateNamespace = name, ns, true
		in.Timeout = o.Timeout
		if len(o.Labels) > 0 {
			in.PostRenderer = labeler(o.Labels)
		}
		if _, err := in.RunWithContext(ctx, ch, values); err != nil {
			return fmt.Errorf("helm: install %s (chart %s %s) in %s: %w", name, ch.Metadata.Name, ch.Metadata.Version, ns, err)
		}
		res.Releases = append(res.Releases, Release{Name: name, Namespace: ns, Chart: ch.Metadata.Name, ChartVersion: ch.Metadata.Version})
		fmt.Fprintf(o.Progress, "   helm install %s/%s (chart %s) %s\n", ns, name, ch.Metadata.Name, since(start))
		return nil
	}

	if err := install(baseChart, ReleaseBase, Namespace, o.BaseValues()); err != nil {
		return res, err
	}
	iv, err := o.IstiodValues()
	if err != nil {
		return res, err
	}
	if err := install(istiodChart, ReleaseIstiod, Namespace, iv); err != nil {
		return res, err
	}
	start := time.Now()
	if err := WaitDeployment(ctx, cs, Namespace, "istiod", o.Timeout); err != nil {
		return res, err
	}
	if err := waitInjector(ctx, cs, o.Timeout); err != nil {
		return res, err
	}
	fmt.Fprintf(o.Progress, "   istiod ready, sidecar injector serving %s\n", since(start))
	for _, g := range o.Gateways {
		if err := install(gatewayChart, g.Name, g.Namespace, o.GatewayValues(g)); err != nil {
			return res, err
		}
	}
	start = time.Now()
	for _, g := range o.Gateways {
		if err := WaitDeployment(ctx, cs, g.Namespace, g.Name, o.Timeout); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(o.Progress, "   egress gateways ready %s\n", since(start))
	return res, nil
}

// Uninstall removes the releases of res in reverse order, then the CustomResourceDefinitions the
// base chart keeps on uninstall (helm.sh/resource-policy: keep; this install created them), then
// the namespaces Install created.
func Uninstall(ctx context.Context, cfg *rest.Config, res *Result, o Options) error {
	o.defaults()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var errs []error
	for i := len(res.Releases) - 1; i >= 0; i-- {
		r := res.Releases[i]
		ac, err := o.actionConfig(cfg, r.Namespace)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var crds []string
		if rel, err := action.NewGet(ac).Run(r.Name); err == nil {
			crds = manifestCRDs(rel.Manifest)
		}
		un := action.NewUninstall(ac)
		un.Timeout = o.Timeout
		if _, err := un.Run(r.Name); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
			errs = append(errs, fmt.Errorf("helm: uninstall %s/%s: %w", r.Namespace, r.Name, err))
			continue
		}
		for _, name := range crds {
			err := dyn.Resource(crdGVR).Delete(ctx, name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete CustomResourceDefinition %s: %w", name, err))
			}
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, ns := range res.CreatedNamespaces {
		if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// manifestCRDs lists the CustomResourceDefinitions of a release manifest.
func manifestCRDs(manifest string) []string {
	var names []string
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	for {
		doc, err := r.Read()
		if err != nil {
			return names
		}
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if yaml.Unmarshal(doc, &obj) == nil && obj.Kind == "CustomResourceDefinition" && obj.Metadata.Name != "" {
			names = append(names, obj.Metadata.Name)
		}
	}
}

func (o *Options) loadChart(spec chartSpec) (*chart.Chart, error) {
	if o.ChartsDir != "" {
		for _, rel := range spec.local {
			p := filepath.Join(o.ChartsDir, rel)
			if _, err := os.Stat(filepath.Join(p, "Chart.yaml")); err == nil {
				ch, err := loader.Load(p)
				if err != nil {
					return nil, fmt.Errorf("helm: load chart %s: %w", p, err)
				}
				return ch, nil
			}
		}
		return nil, fmt.Errorf("helm: no chart %s in %s (looked for %s)", spec.repo, o.ChartsDir, strings.Join(spec.local, ", "))
	}
	settings := cli.New()
	cpo := action.ChartPathOptions{RepoURL: o.RepoURL, Version: o.Version}
	path, err := cpo.LocateChart(spec.repo, settings)
	if err != nil {
		return nil, fmt.Errorf("helm: chart %s %s from %s: %w", spec.repo, o.Version, o.RepoURL, err)
	}
	ch, err := loader.Load(path)
	if err != nil {
		return nil, fmt.Errorf("helm: load chart %s: %w", path, err)
	}
	return ch, nil
}

func (o *Options) actionConfig(cfg *rest.Config, ns string) (*action.Configuration, error) {
	ac := new(action.Configuration)
	log := func(format string, v ...any) { fmt.Fprintf(o.HelmLog, "helm: "+format+"\n", v...) }
	if err := ac.Init(NewRESTClientGetter(cfg, ns), ns, "secret", log); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	return ac, nil
}

// WaitDeployment polls until the Deployment has all its replicas updated and available.
func WaitDeployment(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration) error {
	var last string
	var sel string
	err := poll.Until(ctx, pollInterval, timeout, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() == nil {
				last = err.Error()
			}
			return false, nil
		}
		if d.Spec.Selector != nil {
			sel = metav1.FormatLabelSelector(d.Spec.Selector)
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		last = fmt.Sprintf("%d/%d available, %d updated", st.AvailableReplicas, want, st.UpdatedReplicas)
		return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas >= want && st.AvailableReplicas >= want, nil
	})
	if err != nil {
		return fmt.Errorf("deployment %s/%s not ready (%s%s): %w", ns, name, last, podTrouble(context.WithoutCancel(ctx), cs, ns, sel), err)
	}
	return nil
}

// podTrouble describes the waiting containers of the pods matching sel, for error messages.
func podTrouble(ctx context.Context, cs kubernetes.Interface, ns, sel string) string {
	if sel == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return ""
	}
	var parts []string
	for _, p := range pods.Items {
		for _, c := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if w := c.State.Waiting; w != nil {
				msg := w.Message
				if len(msg) > 200 {
					msg = msg[:200] + "..."
				}
				parts = append(parts, fmt.Sprintf("pod %s container %s: %s %s", p.Name, c.Name, w.Reason, msg))
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

// waitInjector polls until istiod has written the CA bundle of its sidecar injector webhook, so
// that fixture pods created next are injected.
func waitInjector(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) error {
	var last string
	err := poll.Until(ctx, pollInterval, timeout, func(ctx context.Context) (bool, error) {
		list, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{LabelSelector: "app=sidecar-injector"})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if len(list.Items) == 0 {
			last = "no MutatingWebhookConfiguration labelled app=sidecar-injector"
			return false, nil
		}
		return injectorReady(list.Items, &last), nil
	})
	if err != nil {
		return fmt.Errorf("sidecar injector not serving (%s): %w", last, err)
	}
	return nil
}

func injectorReady(items []admissionregistrationv1.MutatingWebhookConfiguration, last *string) bool {
	for _, m := range items {
		for _, w := range m.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				*last = fmt.Sprintf("webhook %s of %s has no CA bundle yet", w.Name, m.Name)
				return false
			}
		}
	}
	return true
}

// pollInterval is how often the install's waits look again.
const pollInterval = 500 * time.Millisecond

func nsExists(ctx context.Context, cs kubernetes.Interface, ns string) (bool, error) {
	_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// labeler is a Helm post-renderer adding labels to every rendered object.
type labeler map[string]string

func (l labeler) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var out bytes.Buffer
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("post-render: %w", err)
		}
		if len(obj) == 0 {
			continue
		}
		md, _ := obj["metadata"].(map[string]any)
		if md == nil {
			md = map[string]any{}
			obj["metadata"] = md
		}
		labels, _ := md["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
			md["labels"] = labels
		}
		for _, k := range keys {
			labels[k] = l[k]
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return &out, nil
}

// restGetter is the RESTClientGetter Helm needs, from a rest.Config.
type restGetter struct {
	cfg *rest.Config
	ns  string
}

// NewRESTClientGetter adapts a rest.Config (and default namespace) to Helm's RESTClientGetter.
func NewRESTClientGetter(cfg *rest.Config, ns string) genericclioptions.RESTClientGetter {
	return &restGetter{cfg: cfg, ns: ns}
}

func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cfg), nil }

func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(g.cfg))
	if err != nil {
		return nil, err
	}
	return memory.NewMemCacheClient(dc), nil
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	dc, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	m := restmapper.NewDeferredDiscoveryRESTMapper(dc)
	return restmapper.NewShortcutExpander(m, dc, nil), nil
}

func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(*clientcmdapi.NewConfig(), &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: g.ns}})
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
