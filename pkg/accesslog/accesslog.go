// Package accesslog parses Envoy access-log lines as Istio writes them, in its default TEXT format
// and in JSON, into outcome.LogEntry values keyed by the field names of outcome.LogFields.
package accesslog

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/egressconf/egressconf/pkg/outcome"
)

// ParseLine reads one access-log line. Lines that are not access-log entries (the proxy's own
// logging) return ok=false without an error.
func ParseLine(line string) (e outcome.LogEntry, ok bool, err error) {
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, "{"):
		return parseJSON(line)
	case strings.HasPrefix(line, "[") && strings.Contains(line, `] "`):
		return parseText(line)
	}
	return nil, false, nil
}

// Parse reads every access-log entry of a log, skipping other lines.
func Parse(log string) ([]outcome.LogEntry, error) {
	var out []outcome.LogEntry
	for i, l := range strings.Split(log, "\n") {
		e, ok, err := ParseLine(l)
		if err != nil {
			return out, fmt.Errorf("line %d: %w", i+1, err)
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

func parseJSON(line string) (outcome.LogEntry, bool, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		// A JSON-looking line that is not JSON is not an access-log entry of ours.
		return nil, false, nil
	}
	if _, isEntry := m["upstream_cluster"]; !isEntry {
		if _, isEntry = m["response_code"]; !isEntry {
			return nil, false, nil
		}
	}
	e := outcome.LogEntry{}
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			e[k] = "-"
		case string:
			e[k] = x
		case float64:
			e[k] = fmt.Sprintf("%g", x)
		default:
			b, _ := json.Marshal(x)
			e[k] = string(b)
		}
	}
	return e, true, nil
}

// parseText reads Istio's default TEXT format:
//
//	[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
//	%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
//	"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//	%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//	"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW%
//	%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
//	%REQUESTED_SERVER_NAME% %ROUTE_NAME%
func parseText(line string) (outcome.LogEntry, bool, error) {
	end := strings.Index(line, "]")
	e := outcome.LogEntry{"start_time": line[1:end]}
	toks, err := tokens(line[end+1:])
	if err != nil {
		return nil, false, err
	}
	if len(toks) < 21 {
		return nil, false, fmt.Errorf("access-log entry has %d fields after the time, want 21: %q", len(toks), line)
	}
	req := strings.SplitN(toks[0], " ", 3)
	for len(req) < 3 {
		req = append(req, "-")
	}
	e["method"], e["path"], e["protocol"] = req[0], req[1], req[2]
	for i, name := range outcome.LogFields[4:] {
		e[name] = toks[i+1]
	}
	return e, true, nil
}

// tokens splits on spaces, keeping "quoted strings" (without their quotes) whole.
func tokens(s string) ([]string, error) {
	var out []string
	s = strings.TrimSpace(s)
	for s != "" {
		if s[0] == '"' {
			end := strings.Index(s[1:], `"`)
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			out = append(out, s[1:end+1])
			s = strings.TrimSpace(s[end+2:])
			continue
		}
		tok, rest, _ := strings.Cut(s, " ")
		out = append(out, tok)
		s = strings.TrimSpace(rest)
	}
	return out, nil
}
