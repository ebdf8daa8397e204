// Package envoyadmin reads a running Envoy through its admin API (in Istio's pods, through
// `pilot-agent request GET PATH`, which reaches the admin port on localhost): what it runs, which
// configuration it holds, and how many requests it handled. The live backend uses it to wait until
// a proxy holds a change (convergence read from the proxy itself, not from istiod) and to prove a
// request went through the proxy.
package envoyadmin

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Get fetches one admin path (e.g. "server_info", "config_dump?resource=dynamic_active_clusters")
// and returns the body. An error means the request could not be made or Envoy did not answer 200.
type Get func(ctx context.Context, path string) ([]byte, error)

// ServerInfo is the part of /server_info the harness reads.
type ServerInfo struct {
	// State is LIVE once Envoy has its initial configuration.
	State string `json:"state"`
	// Version is Envoy's build version, e.g. "9e55.../1.40.0/Clean/RELEASE/BoringSSL".
	Version string `json:"version"`
}

// ReadServerInfo reads /server_info.
func ReadServerInfo(ctx context.Context, get Get) (ServerInfo, error) {
	var si ServerInfo
	body, err := get(ctx, "server_info")
	if err != nil {
		return si, err
	}
	if err := json.Unmarshal(body, &si); err != nil {
		return si, fmt.Errorf("server_info: %w (%s)", err, clip(string(body), 120))
	}
	if si.State == "" {
		return si, fmt.Errorf("server_info has no state (%s)", clip(string(body), 120))
	}
	return si, nil
}

// ReleaseVersion is the release field of an Envoy build version ("1.40.0"), or "" when absent.
func (si ServerInfo) ReleaseVersion() string {
	parts := strings.Split(si.Version, "/")
	if len(parts) >= 2 {
		return parts[1]
	}
	return ""
}

// Config is what a proxy holds: its active clusters, the virtual hosts of its route
// configurations, and what is still warming (received, not yet in use).
type Config struct {
	Clusters map[string]bool
	// VirtualHosts maps a route configuration's name to its virtual hosts' names.
	VirtualHosts map[string][]string
	// Warming lists clusters and listeners not yet active ("cluster NAME", "listener NAME").
	Warming []string
}

// HasVirtualHost reports whether route configuration route has a virtual host named vhost.
func (c *Config) HasVirtualHost(route, vhost string) bool {
	for _, v := range c.VirtualHosts[route] {
		if v == vhost {
			return true
		}
	}
	return false
}

// ReadConfig reads the proxy's dynamic clusters, route configurations and listeners from
// /config_dump, one resource type per request so the answers stay small.
func ReadConfig(ctx context.Context, get Get) (*Config, error) {
	c := &Config{Clusters: map[string]bool{}, VirtualHosts: map[string][]string{}}
	var active, warming struct {
		Configs []struct {
			Cluster struct {
				Name string `json:"name"`
			} `json:"cluster"`
		} `json:"configs"`
	}
	if err := getJSON(ctx, get, "config_dump?resource=dynamic_active_clusters&mask=cluster.name", &active); err != nil {
		return nil, err
	}
	for _, e := range active.Configs {
		c.Clusters[e.Cluster.Name] = true
	}
	if err := getJSON(ctx, get, "config_dump?resource=dynamic_warming_clusters&mask=cluster.name", &warming); err != nil {
		return nil, err
	}
	for _, e := range warming.Configs {
		c.Warming = append(c.Warming, "cluster "+e.Cluster.Name)
	}
	var routes struct {
		Configs []struct {
			RouteConfig struct {
				Name         string `json:"name"`
				VirtualHosts []struct {
					Name string `json:"name"`
				} `json:"virtual_hosts"`
			} `json:"route_config"`
		} `json:"configs"`
	}
	if err := getJSON(ctx, get, "config_dump?resource=dynamic_route_configs", &routes); err != nil {
		return nil, err
	}
	for _, e := range routes.Configs {
		for _, v := range e.RouteConfig.VirtualHosts {
			c.VirtualHosts[e.RouteConfig.Name] = append(c.VirtualHosts[e.RouteConfig.Name], v.Name)
		}
	}
	var listeners struct {
		Configs []struct {
			Name         string          `json:"name"`
			WarmingState json.RawMessage `json:"warming_state"`
		} `json:"configs"`
	}
	if err := getJSON(ctx, get, "config_dump?resource=dynamic_listeners&mask=name,warming_state.version_info", &listeners); err != nil {
		return nil, err
	}
	for _, l := range listeners.Configs {
		if len(l.WarmingState) > 0 && string(l.WarmingState) != "null" {
			c.Warming = append(c.Warming, "listener "+l.Name)
		}
	}
	sort.Strings(c.Warming)
	return c, nil
}

// Draining reads how many listeners and filter chains the proxy is still draining after an update:
// connections opened before it keep the old configuration until they are drained.
func Draining(ctx context.Context, get Get) (listeners, filterChains uint64, err error) {
	st, err := Counters(ctx, get, `^listener_manager\.total_(listeners|filter_chains)_draining$`)
	if err != nil {
		return 0, 0, err
	}
	return st["listener_manager.total_listeners_draining"], st["listener_manager.total_filter_chains_draining"], nil
}

// Counters reads Envoy's counters and gauges whose names match filter (an Envoy stats regex), as
// name -> value.
func Counters(ctx context.Context, get Get, filter string) (map[string]uint64, error) {
	body, err := get(ctx, "stats?filter="+filter)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(value, 10, 64); err == nil {
			out[name] = n
		}
	}
	return out, nil
}

func getJSON(ctx context.Context, get Get, path string, v any) error {
	body, err := get(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w (%s)", path, err, clip(string(body), 120))
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
