// Package cluster provisions kind clusters for live runs through the sigs.k8s.io/kind library (never
// the kind CLI): create or reuse a cluster by name, load image archives into its nodes, hand out a
// client-go configuration, delete it.
//
//	c, err := cluster.Create(ctx, "egressconf",
//		cluster.CreateWithNodeImage("local/kind-node:v1.34.4"),
//		cluster.CreateWithWaitForReady(2*time.Minute))
//	defer c.Delete(ctx) // unless the user keeps it
//	err = c.LoadImageArchive(ctx, "/var/tmp/localistio/images/pilot.tar")
//
// kind's library runs the container engine's CLI (docker by default) underneath, as the kind CLI
// does; the engine must be running.
package cluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	kindlog "sigs.k8s.io/kind/pkg/log"

	"github.com/egressconf/egressconf/pkg/image"
)

// DefaultName is the cluster name when none is given.
const DefaultName = "egressconf"

// DefaultNodeImage is kind v0.33.0's pinned default node image (what an empty node image means).
const DefaultNodeImage = "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"

// Config is the kind cluster configuration egressconf creates: one control-plane node (every
// scenario runs there), kind's default CNI.
const Config = `kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
`

// Cluster is a kind cluster egressconf created or reused.
type Cluster struct {
	// Name is the kind cluster name; the kubeconfig context is "kind-" + Name.
	Name string
	// Created is true when this process created the cluster (false when it was reused).
	Created bool
	// Kubeconfig is the cluster's kubeconfig (host endpoint), as kind generates it.
	Kubeconfig []byte

	provider *kindcluster.Provider
	log      io.Writer
}

// Option configures Create.
type Option func(*options)

type options struct {
	nodeImage      string
	wait           time.Duration
	reuse          bool
	kubeconfigPath string
	rawConfig      []byte
	log            io.Writer
}

// CreateWithNodeImage sets the node image (default: kind's pinned default, DefaultNodeImage).
func CreateWithNodeImage(image string) Option { return func(o *options) { o.nodeImage = image } }

// CreateWithWaitForReady waits up to d for the control plane to be Ready (kind's --wait).
func CreateWithWaitForReady(d time.Duration) Option { return func(o *options) { o.wait = d } }

// CreateWithReuse makes Create return an existing cluster of that name instead of failing
// (default true).
func CreateWithReuse(reuse bool) Option { return func(o *options) { o.reuse = reuse } }

// CreateWithKubeconfigPath makes kind merge the cluster's context into this kubeconfig file
// instead of the default ($KUBECONFIG or ~/.kube/config).
func CreateWithKubeconfigPath(path string) Option {
	return func(o *options) { o.kubeconfigPath = path }
}

// CreateWithRawConfig replaces Config (a kind v1alpha4 Cluster document).
func CreateWithRawConfig(raw []byte) Option { return func(o *options) { o.rawConfig = raw } }

// CreateWithLog sends kind's progress output to w (default: discarded).
func CreateWithLog(w io.Writer) Option { return func(o *options) { o.log = w } }

// Create creates the kind cluster name, or reuses it when it exists (unless CreateWithReuse(false)).
// kind's own create cannot be interrupted; ctx is checked before it starts.
func Create(ctx context.Context, name string, opts ...Option) (*Cluster, error) {
	o := options{reuse: true, log: io.Discard}
	for _, f := range opts {
		f(&o)
	}
	if name == "" {
		name = DefaultName
	}
	root, err := engineRoot(ctx)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Name: name, provider: newProvider(o.log), log: o.log}
	exists, err := Exists(name)
	if err != nil {
		return nil, err
	}
	if exists {
		if !o.reuse {
			return nil, fmt.Errorf("kind cluster %q already exists (delete it, or reuse it)", name)
		}
	} else {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := checkFreeDisk(root, MinFreeDisk); err != nil {
			return nil, err
		}
		raw := o.rawConfig
		if raw == nil {
			raw = []byte(Config)
		}
		copts := []kindcluster.CreateOption{
			kindcluster.CreateWithRawConfig(raw),
			kindcluster.CreateWithDisplayUsage(false),
			kindcluster.CreateWithDisplaySalutation(false),
		}
		if o.nodeImage != "" {
			copts = append(copts, kindcluster.CreateWithNodeImage(o.nodeImage))
		}
		if o.wait > 0 {
			copts = append(copts, kindcluster.CreateWithWaitForReady(o.wait))
		}
		if o.kubeconfigPath != "" {
			copts = append(copts, kindcluster.CreateWithKubeconfigPath(o.kubeconfigPath))
		}
		if err := c.provider.Create(name, copts...); err != nil {
			return nil, fmt.Errorf("kind: create cluster %q: %w", name, err)
		}
		c.Created = true
	}
	kc, err := c.provider.KubeConfig(name, false)
	if err != nil {
		return nil, fmt.Errorf("kind: kubeconfig of cluster %q: %w", name, err)
	}
	c.Kubeconfig = []byte(kc)
	return c, nil
}

// Exists reports whether a kind cluster of that name exists.
func Exists(name string) (bool, error) {
	names, err := newProvider(io.Discard).List()
	if err != nil {
		return false, fmt.Errorf("kind: list clusters: %w", err)
	}
	return slices.Contains(names, name), nil
}

// Context is the kubeconfig context kind writes for the cluster.
func (c *Cluster) Context() string { return "kind-" + c.Name }

// RESTConfig is a client-go configuration for the cluster.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(c.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kind: kubeconfig of cluster %q: %w", c.Name, err)
	}
	return cfg, nil
}

// WriteKubeconfig writes the cluster's kubeconfig to path (mode 0600).
func (c *Cluster) WriteKubeconfig(path string) error {
	return os.WriteFile(path, c.Kubeconfig, 0o600)
}

// LoadImageArchive imports an image archive (`docker save` tarball or OCI layout tarball) into
// every node's containerd, as `kind load image-archive` does, through the kind library.
func (c *Cluster) LoadImageArchive(ctx context.Context, path string) error {
	nodes, err := c.provider.ListInternalNodes(c.Name)
	if err != nil {
		return fmt.Errorf("kind: nodes of cluster %q: %w", c.Name, err)
	}
	if len(nodes) == 0 {
		return fmt.Errorf("kind: cluster %q has no nodes", c.Name)
	}
	// A reused cluster usually has the archive's images already: load only where a node lacks one
	// of them at the archive's ID (what `kind load docker-image` checks too). An archive that
	// cannot be read that way is loaded as it is.
	imgs, _ := image.ArchiveImages(path)
	for _, n := range nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(imgs) > 0 && nodeHas(n, imgs) {
			if c.log != nil {
				fmt.Fprintf(c.log, "   node %s has %s at %s already: not loaded again\n", n.String(), imgs[0].Ref, short(imgs[0].ID))
			}
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("kind: load image archive: %w", err)
		}
		err = nodeutils.LoadImageArchive(n, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("kind: load %s into node %s: %w", path, n.String(), err)
		}
	}
	return nil
}

// nodeHas reports whether the node's containerd has every image at the archive's ID.
func nodeHas(n nodes.Node, imgs []image.ArchiveImage) bool {
	for _, img := range imgs {
		id, err := nodeutils.ImageID(n, img.Ref)
		if err != nil || id != img.ID {
			return false
		}
	}
	return true
}

func short(id string) string {
	if len(id) > len("sha256:")+12 {
		return id[:len("sha256:")+12]
	}
	return id
}

// Delete deletes the cluster (and its kubeconfig context). Deleting a missing cluster is fine.
func (c *Cluster) Delete(ctx context.Context) error {
	if err := c.provider.Delete(c.Name, ""); err != nil {
		return fmt.Errorf("kind: delete cluster %q: %w", c.Name, err)
	}
	return nil
}

// Delete deletes the kind cluster name, if it exists.
func Delete(ctx context.Context, name string) error {
	return (&Cluster{Name: name, provider: newProvider(io.Discard)}).Delete(ctx)
}

func newProvider(w io.Writer) *kindcluster.Provider {
	return kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(&logger{w: w}))
}

// logger adapts kind's logger to a writer: warnings and errors always, info at V(0).
type logger struct{ w io.Writer }

func (l *logger) Warn(message string)               { l.line("WARN", message) }
func (l *logger) Warnf(format string, args ...any)  { l.line("WARN", fmt.Sprintf(format, args...)) }
func (l *logger) Error(message string)              { l.line("ERROR", message) }
func (l *logger) Errorf(format string, args ...any) { l.line("ERROR", fmt.Sprintf(format, args...)) }
func (l *logger) V(level kindlog.Level) kindlog.InfoLogger {
	if level > 0 {
		return kindlog.NoopInfoLogger{}
	}
	return &infoLogger{l}
}

type infoLogger struct{ l *logger }

func (i *infoLogger) Info(message string)              { i.l.line("", message) }
func (i *infoLogger) Infof(format string, args ...any) { i.l.line("", fmt.Sprintf(format, args...)) }
func (i *infoLogger) Enabled() bool                    { return true }

func (l *logger) line(level, msg string) {
	msg = strings.TrimRight(msg, " \n")
	if msg == "" || strings.HasPrefix(strings.TrimSpace(msg), "•") {
		return // kind's "step started" lines: the "✓" line follows
	}
	if level != "" {
		msg = level + ": " + msg
	}
	fmt.Fprintf(l.w, "   kind: %s\n", msg)
}
