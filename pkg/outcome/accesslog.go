package outcome

import (
	"fmt"
	"sort"
	"strings"
)

// LogEntry is one access-log entry of a proxy, by field name. Names are Envoy's command operators
// in lower case without the percent signs, as Istio's JSON access-log format spells them
// (upstream_cluster, response_flags, response_code_details, authority, requested_server_name...).
type LogEntry map[string]string

// LogExpected is an access-log entry expectation: every named field must have exactly this value.
type LogExpected struct {
	Fields map[string]string `yaml:"fields" json:"fields"`
}

// SortedKeys lists the expected field names in order.
func (l LogExpected) SortedKeys() []string { return sortedKeys(l.Fields) }

// Validate checks the expectation is well formed.
func (l LogExpected) Validate() error {
	if len(l.Fields) == 0 {
		return fmt.Errorf("fields: at least one field is required")
	}
	for k := range l.Fields {
		if !KnownLogField(k) {
			return fmt.Errorf("fields: unknown access-log field %q; known fields: %s", k, strings.Join(LogFields, ", "))
		}
	}
	return nil
}

func (l LogExpected) String() string {
	var parts []string
	for _, k := range l.SortedKeys() {
		parts = append(parts, k+"="+l.Fields[k])
	}
	return strings.Join(parts, " ")
}

// Matches reports whether the entry has every expected field, with exactly the expected value:
// an expected "" needs the field present and empty, never absent.
func (l LogExpected) Matches(e LogEntry) bool {
	for k, v := range l.Fields {
		got, ok := e[k]
		if !ok || got != v {
			return false
		}
	}
	return true
}

// MatchLog looks for an entry matching the expectation; the error describes the closest entries.
func MatchLog(l LogExpected, entries []LogEntry) error {
	for _, e := range entries {
		if l.Matches(e) {
			return nil
		}
	}
	var seen []string
	for i, e := range entries {
		if i == 5 {
			seen = append(seen, fmt.Sprintf("... %d more", len(entries)-5))
			break
		}
		var parts []string
		for _, k := range l.SortedKeys() {
			v, ok := e[k]
			if !ok {
				v = "<absent>"
			}
			parts = append(parts, k+"="+v)
		}
		seen = append(seen, "{"+strings.Join(parts, " ")+"}")
	}
	if len(entries) == 0 {
		return fmt.Errorf("expected a log entry with %s, observed no entries", l)
	}
	return fmt.Errorf("expected a log entry with %s, observed %d entries: %s", l, len(entries), strings.Join(seen, ", "))
}

// LogFields are the fields of Istio's default access-log format (TEXT and JSON alike), in the
// order the TEXT format prints them after start_time.
var LogFields = []string{
	"start_time", "method", "path", "protocol", "response_code", "response_flags",
	"response_code_details", "connection_termination_details", "upstream_transport_failure_reason",
	"bytes_received", "bytes_sent", "duration", "upstream_service_time", "x_forwarded_for",
	"user_agent", "request_id", "authority", "upstream_host", "upstream_cluster",
	"upstream_local_address", "downstream_local_address", "downstream_remote_address",
	"requested_server_name", "route_name",
}

// LogFieldProbe is the entry field naming the probe (Observed.Probe) whose request the entry
// logs. Backends set it: the model when it writes an entry; on a live mesh, Envoy logs the
// probe's marker header, or the backend ties the entry to the probe by its addresses.
const LogFieldProbe = "egressconf_probe"

// ProbeHeader carries a probe's marker on plain-HTTP requests; the access-log format egressconf
// installs logs it as LogFieldProbe at every proxy the request crosses.
const ProbeHeader = "X-Egressconf-Probe"

// WithProbe returns a copy of e marked as logged for the probe's request.
func WithProbe(e LogEntry, probe string) LogEntry {
	c := make(LogEntry, len(e)+1)
	for k, v := range e {
		c[k] = v
	}
	c[LogFieldProbe] = probe
	return c
}

// KnownLogField reports whether name is one of LogFields.
func KnownLogField(name string) bool {
	i := sort.SearchStrings(sortedLogFields, name)
	return i < len(sortedLogFields) && sortedLogFields[i] == name
}

var sortedLogFields = func() []string {
	s := append([]string(nil), LogFields...)
	sort.Strings(s)
	return s
}()
