// Package xdsclient is a virtual proxy: it subscribes to an istiod over ADS as a given pod would and
// keeps the listeners, clusters and routes istiod pushes to it. The control-plane probe evaluates
// requests on this xDS with pkg/envoymodel, the same model the offline backend uses.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/egressconf/egressconf/pkg/envoymodel"
)

// Type URLs of the resources a proxy needs for the model.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// Node is the identity a virtual proxy announces: what istiod needs to compute a pod's config.
type Node struct {
	// Type is "sidecar" or "router" (a gateway).
	Type      string
	IP        string
	Pod       string
	Namespace string
	Labels    map[string]string
	// ServiceAccount of the pod.
	ServiceAccount string
	IstioVersion   string
	ClusterID      string
}

// ID is the Envoy node ID Istio expects: TYPE~IP~POD.NS~NS.svc.cluster.local.
func (n Node) ID() string {
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", n.Type, n.IP, n.Pod, n.Namespace, n.Namespace)
}

func (n Node) proto() (*core.Node, error) {
	labels := map[string]any{}
	for k, v := range n.Labels {
		labels[k] = v
	}
	version := n.IstioVersion
	if version == "" {
		version = "1.31.0"
	}
	clusterID := n.ClusterID
	if clusterID == "" {
		clusterID = "Kubernetes"
	}
	md, err := structpb.NewStruct(map[string]any{
		"NAMESPACE": n.Namespace, "NAME": n.Pod, "LABELS": labels, "INSTANCE_IPS": n.IP,
		"ISTIO_VERSION": version, "CLUSTER_ID": clusterID, "SERVICE_ACCOUNT": n.ServiceAccount,
	})
	if err != nil {
		return nil, err
	}
	return &core.Node{Id: n.ID(), Metadata: md}, nil
}

// Client is one virtual proxy's ADS subscription.
type Client struct {
	node   *core.Node
	conn   *grpc.ClientConn
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	cancel context.CancelFunc

	mu        sync.Mutex
	clusters  map[string]*cluster.Cluster
	listeners map[string]*listener.Listener
	routes    map[string]*route.RouteConfiguration
	routeWant []string
	received  map[string]bool
	gen       uint64
	lastPush  time.Time
	err       error
	changed   chan struct{}
}

// Dial subscribes as node to the ADS server at addr (istiod's plaintext xDS port, 15010) and starts
// receiving. Use WaitSynced before reading.
func Dial(ctx context.Context, addr string, n Node) (*Client, error) {
	node, err := n.proto()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("xds %s: %w", addr, err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		cancel()
		conn.Close()
		return nil, fmt.Errorf("xds %s: %w", addr, err)
	}
	c := &Client{node: node, conn: conn, stream: stream, cancel: cancel, changed: make(chan struct{}),
		clusters: map[string]*cluster.Cluster{}, listeners: map[string]*listener.Listener{}, routes: map[string]*route.RouteConfiguration{},
		received: map[string]bool{}}
	for _, t := range []string{ClusterType, ListenerType} {
		if err := c.send(&discovery.DiscoveryRequest{TypeUrl: t}); err != nil {
			c.Close()
			return nil, err
		}
	}
	go c.recv()
	return c, nil
}

func (c *Client) send(req *discovery.DiscoveryRequest) error {
	req.Node = c.node
	if err := c.stream.Send(req); err != nil {
		return fmt.Errorf("xds send %s for %s: %w", req.TypeUrl, c.node.Id, err)
	}
	return nil
}

// recv applies each push, ACKs it, and asks for the routes the listeners name.
func (c *Client) recv() {
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("xds stream for %s ended: %w", c.node.Id, err)
			c.signal()
			c.mu.Unlock()
			return
		}
		var newRoutes []string
		c.mu.Lock()
		err = c.apply(resp)
		if err == nil && resp.TypeUrl == ListenerType {
			newRoutes = c.routeNames()
			if !equal(newRoutes, c.routeWant) {
				c.routeWant = newRoutes
				// A route config no longer named is gone.
				for n := range c.routes {
					if !contains(newRoutes, n) {
						delete(c.routes, n)
					}
				}
			} else {
				newRoutes = nil
			}
		}
		if err != nil {
			c.err = err
		}
		c.gen++
		c.lastPush = time.Now()
		c.signal()
		c.mu.Unlock()
		ack := &discovery.DiscoveryRequest{TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}
		if resp.TypeUrl == RouteType {
			c.mu.Lock()
			ack.ResourceNames = append([]string(nil), c.routeWant...)
			c.mu.Unlock()
		}
		if err := c.send(ack); err != nil {
			return
		}
		if newRoutes != nil {
			if err := c.send(&discovery.DiscoveryRequest{TypeUrl: RouteType, ResourceNames: newRoutes}); err != nil {
				return
			}
		}
	}
}

func (c *Client) signal() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Client) apply(resp *discovery.DiscoveryResponse) error {
	switch resp.TypeUrl {
	case ClusterType:
		m := map[string]*cluster.Cluster{}
		for _, r := range resp.Resources {
			x := &cluster.Cluster{}
			if err := r.UnmarshalTo(x); err != nil {
				return err
			}
			m[x.Name] = x
		}
		c.clusters = m
	case ListenerType:
		m := map[string]*listener.Listener{}
		for _, r := range resp.Resources {
			x := &listener.Listener{}
			if err := r.UnmarshalTo(x); err != nil {
				return err
			}
			m[x.Name] = x
		}
		c.listeners = m
	case RouteType:
		for _, r := range resp.Resources {
			x := &route.RouteConfiguration{}
			if err := r.UnmarshalTo(x); err != nil {
				return err
			}
			c.routes[x.Name] = x
		}
	default:
		return nil
	}
	c.received[resp.TypeUrl] = true
	return nil
}

// routeNames are the RDS names of every HTTP connection manager of the listeners.
func (c *Client) routeNames() []string {
	seen := map[string]bool{}
	for _, l := range c.listeners {
		chains := append([]*listener.FilterChain{}, l.GetFilterChains()...)
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains, l.GetDefaultFilterChain())
		}
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				if f.GetName() != "envoy.filters.network.http_connection_manager" {
					continue
				}
				h := &hcmv3.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(h); err == nil && h.GetRds() != nil {
					seen[h.GetRds().GetRouteConfigName()] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// synced reports whether clusters, listeners and every named route config have arrived.
func (c *Client) synced() bool {
	if !c.received[ClusterType] || !c.received[ListenerType] {
		return false
	}
	for _, n := range c.routeWant {
		if c.routes[n] == nil {
			return false
		}
	}
	return true
}

// WaitSynced blocks until the proxy has its whole configuration.
func (c *Client) WaitSynced(ctx context.Context) error {
	return c.waitFor(ctx, func() bool { return c.synced() })
}

// Generation counts the pushes applied so far.
func (c *Client) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// WaitPushAfter blocks until a push later than generation gen arrived and the configuration is
// whole again, then until no further push came for quiet (istiod sends CDS, then LDS, then RDS).
func (c *Client) WaitPushAfter(ctx context.Context, gen uint64, quiet time.Duration) error {
	if err := c.waitFor(ctx, func() bool { return c.gen > gen && c.synced() }); err != nil {
		return err
	}
	for {
		c.mu.Lock()
		last, ch := c.lastPush, c.changed
		c.mu.Unlock()
		wait := quiet - time.Since(last)
		if wait <= 0 {
			return c.waitFor(ctx, func() bool { return c.synced() })
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-ch:
			t.Stop()
		case <-t.C:
		}
	}
}

func (c *Client) waitFor(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return err
		}
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for xDS of %s: %w", c.node.Id, ctx.Err())
		case <-ch:
		}
	}
}

// Snapshot is the proxy's current configuration, for the model.
func (c *Client) Snapshot() *envoymodel.XDS {
	c.mu.Lock()
	defer c.mu.Unlock()
	x := &envoymodel.XDS{}
	for _, n := range sortedKeys(c.listeners) {
		x.Listeners = append(x.Listeners, c.listeners[n])
	}
	for _, n := range sortedKeys(c.clusters) {
		x.Clusters = append(x.Clusters, c.clusters[n])
	}
	for _, n := range c.routeWant {
		if r := c.routes[n]; r != nil {
			x.Routes = append(x.Routes, r)
		}
	}
	return x
}

// Err is the stream's error, if it ended.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the subscription.
func (c *Client) Close() {
	c.cancel()
	c.conn.Close()
}

// ErrNotSynced is returned when a snapshot is asked of a proxy that never synced.
var ErrNotSynced = errors.New("xds not synced")

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
