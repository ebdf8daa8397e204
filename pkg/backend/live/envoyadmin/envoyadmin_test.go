package envoyadmin

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// fake answers admin paths from a table, as pilot-agent request would relay Envoy's answers.
func fake(answers map[string]string) Get {
	return func(_ context.Context, path string) ([]byte, error) {
		for prefix, body := range answers {
			if strings.HasPrefix(path, prefix) {
				return []byte(body), nil
			}
		}
		return nil, fmt.Errorf("no answer for %s", path)
	}
}

func TestReadConfig(t *testing.T) {
	get := fake(map[string]string{
		"config_dump?resource=dynamic_active_clusters": `{"configs":[
			{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster","cluster":{"name":"outbound|1||g3.sentinel.egressconf.invalid"}},
			{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster","cluster":{"name":"BlackHoleCluster"}}]}`,
		"config_dump?resource=dynamic_warming_clusters": `{"configs":[{"cluster":{"name":"outbound|80||www.aliyun.com"}}]}`,
		"config_dump?resource=dynamic_route_configs": `{"configs":[{"route_config":{"name":"2","virtual_hosts":[
			{"name":"g3.sentinel.egressconf.invalid:2"},{"name":"block_all"}]}}]}`,
		"config_dump?resource=dynamic_listeners": `{"configs":[{"name":"0.0.0.0_80","active_state":{}},
			{"name":"0.0.0.0_443","warming_state":{"version_info":"x"}}]}`,
	})
	c, err := ReadConfig(context.Background(), get)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Clusters["outbound|1||g3.sentinel.egressconf.invalid"] || c.Clusters["outbound|80||www.aliyun.com"] {
		t.Errorf("clusters %v: want the active ones only", c.Clusters)
	}
	if !c.HasVirtualHost("2", "g3.sentinel.egressconf.invalid:2") || c.HasVirtualHost("2", "g4.sentinel.egressconf.invalid:2") || c.HasVirtualHost("80", "block_all") {
		t.Errorf("virtual hosts %v", c.VirtualHosts)
	}
	if want := []string{"cluster outbound|80||www.aliyun.com", "listener 0.0.0.0_443"}; !reflect.DeepEqual(c.Warming, want) {
		t.Errorf("warming %v, want %v", c.Warming, want)
	}
}

func TestReadConfigErrors(t *testing.T) {
	if _, err := ReadConfig(context.Background(), fake(map[string]string{"config_dump": "not json"})); err == nil || !strings.Contains(err.Error(), "dynamic_active_clusters") {
		t.Errorf("bad JSON: %v, want an error naming the path", err)
	}
	if _, err := ReadConfig(context.Background(), fake(nil)); err == nil {
		t.Error("no answer: want an error")
	}
}

func TestServerInfo(t *testing.T) {
	si, err := ReadServerInfo(context.Background(), fake(map[string]string{"server_info": `{"version":"9e55/1.40.0/Clean/RELEASE/BoringSSL","state":"LIVE"}`}))
	if err != nil || si.State != "LIVE" || si.ReleaseVersion() != "1.40.0" {
		t.Errorf("%+v %v", si, err)
	}
	// The stub sidecar answered readiness but had no admin behind it.
	if _, err := ReadServerInfo(context.Background(), fake(map[string]string{"server_info": `ok`})); err == nil {
		t.Error("a non-Envoy answer must be an error")
	}
	if _, err := ReadServerInfo(context.Background(), fake(map[string]string{"server_info": `{}`})); err == nil {
		t.Error("server_info without a state must be an error")
	}
}

func TestCounters(t *testing.T) {
	got, err := Counters(context.Background(), fake(map[string]string{"stats": "http.outbound_0.0.0.0_80.downstream_rq_total: 7\ncluster.x.upstream_cx_total: 2\nnot a counter\n"}), "rq_total")
	if err != nil || got["http.outbound_0.0.0.0_80.downstream_rq_total"] != 7 || len(got) != 2 {
		t.Errorf("%v %v", got, err)
	}
}

func TestDraining(t *testing.T) {
	l, fc, err := Draining(context.Background(), fake(map[string]string{"stats": "listener_manager.total_filter_chains_draining: 2\nlistener_manager.total_listeners_draining: 0\n"}))
	if err != nil || l != 0 || fc != 2 {
		t.Errorf("draining %d listeners %d filter chains, %v; want 0 and 2", l, fc, err)
	}
}
