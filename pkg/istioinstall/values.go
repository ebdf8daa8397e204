package istioinstall

import (
	"encoding/json"
	"fmt"

	"github.com/egressconf/egressconf/fixtures"
	"github.com/egressconf/egressconf/pkg/outcome"
)

// AccessLogFormat maps every field egressconf's log expectations read (outcome.LogFields) to the
// Envoy command operator Istio's default JSON access-log format uses for it
// (istio.io/istio pilot/pkg/model EnvoyJSONLogFormatIstio). Setting it explicitly keeps the keys
// stable whatever the installed Istio's default is.
var AccessLogFormat = map[string]string{
	"start_time":                        "%START_TIME%",
	"method":                            "%REQ(:METHOD)%",
	"path":                              "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"protocol":                          "%PROTOCOL%",
	"response_code":                     "%RESPONSE_CODE%",
	"response_flags":                    "%RESPONSE_FLAGS%",
	"response_code_details":             "%RESPONSE_CODE_DETAILS%",
	"connection_termination_details":    "%CONNECTION_TERMINATION_DETAILS%",
	"upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
	"bytes_received":                    "%BYTES_RECEIVED%",
	"bytes_sent":                        "%BYTES_SENT%",
	"duration":                          "%DURATION%",
	"upstream_service_time":             "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
	"x_forwarded_for":                   "%REQ(X-FORWARDED-FOR)%",
	"user_agent":                        "%REQ(USER-AGENT)%",
	"request_id":                        "%REQ(X-REQUEST-ID)%",
	"authority":                         "%REQ(:AUTHORITY)%",
	"upstream_host":                     "%UPSTREAM_HOST%",
	"upstream_cluster":                  "%UPSTREAM_CLUSTER_RAW%",
	"upstream_local_address":            "%UPSTREAM_LOCAL_ADDRESS%",
	"downstream_local_address":          "%DOWNSTREAM_LOCAL_ADDRESS%",
	"downstream_remote_address":         "%DOWNSTREAM_REMOTE_ADDRESS%",
	"requested_server_name":             "%REQUESTED_SERVER_NAME%",
	"route_name":                        "%ROUTE_NAME%",
	// Not an Istio field: the probe's marker header, so each log check reads its own request.
	outcome.LogFieldProbe: "%REQ(" + outcome.ProbeHeader + ")%",
}

// AccessLogFormatJSON is meshConfig.accessLogFormat: a JSON object whose keys are outcome.LogFields.
func AccessLogFormatJSON() (string, error) {
	for _, f := range outcome.LogFields {
		if _, ok := AccessLogFormat[f]; !ok {
			return "", fmt.Errorf("istioinstall: no access-log operator for field %q", f)
		}
	}
	b, err := json.Marshal(AccessLogFormat) // keys sorted: a stable ConfigMap
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// DrainDuration is the proxies' drain time in the meshes egressconf installs. Each step that
// changes a listener waits for it (Converge reads the proxies' draining gauges): 5s made about
// two thirds of a step's convergence time here (issue #14); 1s still lets requests in flight end.
const DrainDuration = "1s"

// MeshConfig is the meshConfig egressconf installs istiod with: access logs of every proxy on
// stdout, JSON-encoded with the fields the log expectations read. Steps change
// outboundTrafficPolicy at run time (pkg/backend/live), not here.
func MeshConfig() (map[string]any, error) {
	format, err := AccessLogFormatJSON()
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"accessLogFile":     "/dev/stdout",
		"accessLogEncoding": "JSON",
		"accessLogFormat":   format,
		// After a listener changes, Envoy keeps serving the connections opened before it with the
		// old configuration until it has drained them (Envoy's drain time; Istio's default 45s):
		// measured here, a sidecar's pooled HTTP/2 connection to the gateway kept passing requests
		// an AuthorizationPolicy already denied. Convergence waits for the drain to end (read from
		// each proxy), so a short drain keeps every step short; steady-state behaviour is the same.
		"defaultConfig": map[string]any{"drainDuration": DrainDuration},
	}, nil
}

// IstiodValues are the istio-discovery (istiod) chart values, with the settings of o.Profile
// merged in (ProfileUpstreamEnvoy: env PILOT_ENABLE_METADATA_EXCHANGE and PILOT_ENABLE_ALPN_FILTER
// "false", telemetry.enabled false).
func (o *Options) IstiodValues() (map[string]any, error) {
	mesh, err := MeshConfig()
	if err != nil {
		return nil, err
	}
	global := map[string]any{
		"proxy": map[string]any{
			// Many small fixture pods on one kind node: keep sidecar requests low.
			"resources": map[string]any{"requests": map[string]any{"cpu": "10m", "memory": "40Mi"}},
		},
	}
	if o.Hub != "" {
		global["hub"] = o.Hub
	}
	if o.Tag != "" {
		global["tag"] = o.Tag
	}
	if o.ImagePullPolicy != "" {
		global["imagePullPolicy"] = o.ImagePullPolicy
	}
	values := map[string]any{
		"global":           global,
		"autoscaleEnabled": false,
		"replicaCount":     1,
		"resources":        map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "256Mi"}},
		"meshConfig":       mesh,
	}
	pv, err := o.Profile.profileValues()
	if err != nil {
		return nil, err
	}
	return mergeValues(values, pv), nil
}

// BaseValues are the base chart values.
func (o *Options) BaseValues() map[string]any {
	return map[string]any{"defaultRevision": "default"}
}

// GatewayValues are the gateway chart values for a fixture egress gateway: its pod labels (the
// selectors of Gateway and AuthorizationPolicy resources), a ClusterIP Service with its ports,
// one replica.
func (o *Options) GatewayValues(g fixtures.Gateway) map[string]any {
	labels := map[string]any{}
	for k, v := range g.Labels {
		labels[k] = v
	}
	ports := []any{map[string]any{"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"}}
	for _, p := range g.Ports {
		ports = append(ports, map[string]any{"name": p.Name, "port": p.Number, "targetPort": p.TargetPort, "protocol": p.Protocol})
	}
	v := map[string]any{
		"name":         g.Name,
		"labels":       labels,
		"replicaCount": 1,
		"autoscaling":  map[string]any{"enabled": false},
		"service":      map[string]any{"type": "ClusterIP", "ports": ports},
		"resources": map[string]any{
			"requests": map[string]any{"cpu": "10m", "memory": "40Mi"},
		},
	}
	if o.ImagePullPolicy != "" {
		v["imagePullPolicy"] = o.ImagePullPolicy
	}
	return v
}
