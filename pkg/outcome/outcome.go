// Package outcome defines, in one place, every outcome a probe can be expected to show and how an
// observed curl run is compared with it.
//
// The words of SCENARIOS.md, precisely:
//
//   - an HTTP status (200, 301, 403, 502...): curl exited 0 and %{http_code} is that status.
//   - reset: no HTTP response; curl exited with one of ResetExitCodes and %{http_code} is 000. Envoy
//     closing a connection it routed to BlackHoleCluster, or refusing a TLS handshake, shows as 35
//     (TLS connect: "SSL_ERROR_SYSCALL", "Connection reset by peer"), 52 (empty reply: the connection
//     closed before any response byte) or 56 (receive failure: reset mid-read). Exit 7 (connection
//     refused) is not a reset: with a sidecar the connect always reaches the local Envoy, so a refusal
//     means the client is not in the mesh, a different outcome. The ASM seeds' "connection refused" is
//     their loose word for the same curl exit 35/56.
//   - timeout: no connection at all (a NetworkPolicy drop): curl exit 28 (--connect-timeout or
//     --max-time elapsed); %{http_code} 000. Exit 7 (refused) counts only for an expectation with
//     cniRejects: true (a CNI that rejects instead of dropping): elsewhere a refusal has other
//     causes (a Service without endpoints) and must not pass a NetworkPolicy check.
//   - header equals: a response header (name case-insensitive) has exactly this value.
//   - body contains / body matches: a substring, or a Go regular expression, of the response body.
//   - HTTP version: the protocol of the final response (%{http_version}: 1.1, 2).
package outcome

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ResetExitCodes are the curl exit codes accepted as "reset".
var ResetExitCodes = []int{35, 52, 56}

// TimeoutExitCodes are the curl exit codes accepted as "timeout".
var TimeoutExitCodes = []int{28}

// RefusedExitCode is curl's exit for a refused connection: a "timeout" only with CNIRejects.
const RefusedExitCode = 7

// Kind of a single expected result.
type Kind string

const (
	KindStatus  Kind = "status"
	KindReset   Kind = "reset"
	KindTimeout Kind = "timeout"
)

// Result is one acceptable result: an HTTP status, reset or timeout.
type Result struct {
	Kind   Kind
	Status int
}

func (r Result) String() string {
	if r.Kind == KindStatus {
		return strconv.Itoa(r.Status)
	}
	return string(r.Kind)
}

// ParseResult reads "301", "reset" or "timeout".
func ParseResult(s string) (Result, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "reset":
		return Result{Kind: KindReset}, nil
	case "timeout":
		return Result{Kind: KindTimeout}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return Result{}, fmt.Errorf("result %q: want an HTTP status (100-599), \"reset\" or \"timeout\"", s)
	}
	return Result{Kind: KindStatus, Status: n}, nil
}

// Results is a set of acceptable results; YAML takes a scalar or a list ("502 or 403").
type Results []Result

// UnmarshalYAML accepts `result: 301`, `result: reset` or `result: [502, 403]`.
func (rs *Results) UnmarshalYAML(n *yaml.Node) error {
	var items []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		items = []*yaml.Node{n}
	case yaml.SequenceNode:
		items = n.Content
	default:
		return fmt.Errorf("line %d: result: want a status, reset, timeout, or a list of them", n.Line)
	}
	for _, it := range items {
		if it.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: result: list items must be scalars", it.Line)
		}
		r, err := ParseResult(it.Value)
		if err != nil {
			return fmt.Errorf("line %d: %v", it.Line, err)
		}
		*rs = append(*rs, r)
	}
	return nil
}

// MarshalYAML writes the compact form back.
func (rs Results) MarshalYAML() (any, error) {
	if len(rs) == 1 {
		return rs[0].String(), nil
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out, nil
}

func (rs Results) String() string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return strings.Join(out, " or ")
}

// Expected is what a probe must show. Result is required; the rest narrow it.
type Expected struct {
	Result       Results           `yaml:"result" json:"result"`
	HTTPVersion  string            `yaml:"httpVersion,omitempty" json:"httpVersion,omitempty"`
	Headers      map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	BodyContains string            `yaml:"bodyContains,omitempty" json:"bodyContains,omitempty"`
	BodyMatches  string            `yaml:"bodyMatches,omitempty" json:"bodyMatches,omitempty"`
	// CNIRejects says the cluster's CNI rejects a NetworkPolicy-denied connection instead of
	// dropping it: for a timeout, curl exit 7 (refused) is accepted too.
	CNIRejects bool `yaml:"cniRejects,omitempty" json:"cniRejects,omitempty"`
	// ExitCode is curl's exact exit code (28: --max-time elapsed, 47: too many redirects...).
	ExitCode *int `yaml:"exitCode,omitempty" json:"exitCode,omitempty"`
	// Elapsed bounds how long curl took (%{time_total}), e.g. a 504 "after ~3 s".
	Elapsed *Elapsed `yaml:"elapsed,omitempty" json:"elapsed,omitempty"`
	// Hops are every response curl received, in order (a redirect chain followed with -L): the
	// observation must have exactly these, each with its status and headers.
	Hops []HopExpected `yaml:"hops,omitempty" json:"hops,omitempty"`
	// First is the first response only (the 301 of a chain), whatever follows it.
	First *HopExpected `yaml:"first,omitempty" json:"first,omitempty"`
}

// HopExpected is one response of a redirect chain: its status and, narrowing it, header values.
type HopExpected struct {
	Status  int               `yaml:"status" json:"status"`
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
}

func (h HopExpected) String() string {
	s := strconv.Itoa(h.Status)
	for _, k := range sortedKeys(h.Headers) {
		s += fmt.Sprintf(" %s: %s", k, h.Headers[k])
	}
	return s
}

// match compares one observed response with the hop; the error says what differed.
func (h HopExpected) match(o Hop) error {
	if o.Status != h.Status {
		return fmt.Errorf("status %d, observed %d", h.Status, o.Status)
	}
	if err := matchHeaders(h.Headers, o.Headers); err != nil {
		return err
	}
	return nil
}

// Elapsed bounds a duration; either bound may be left out. YAML: {min: 2s, max: 5s}.
type Elapsed struct {
	Min time.Duration `json:"min,omitempty"`
	Max time.Duration `json:"max,omitempty"`
}

// UnmarshalYAML reads Go durations ("2s", "1500ms"); a bare number has no unit and is refused.
func (e *Elapsed) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: elapsed: want {min: DURATION, max: DURATION}", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var dst *time.Duration
		switch k.Value {
		case "min":
			dst = &e.Min
		case "max":
			dst = &e.Max
		default:
			return fmt.Errorf("line %d: elapsed: field %s is not a known field here (min, max)", k.Line, k.Value)
		}
		d, err := time.ParseDuration(v.Value)
		if v.Kind != yaml.ScalarNode || err != nil {
			return fmt.Errorf("line %d: elapsed.%s: %q is not a duration such as 3s or 1500ms", v.Line, k.Value, v.Value)
		}
		*dst = d
	}
	return nil
}

// MarshalYAML writes the durations back as strings.
func (e Elapsed) MarshalYAML() (any, error) {
	m := map[string]string{}
	if e.Min != 0 {
		m["min"] = e.Min.String()
	}
	if e.Max != 0 {
		m["max"] = e.Max.String()
	}
	return m, nil
}

func (e Elapsed) String() string {
	switch {
	case e.Min > 0 && e.Max > 0:
		return fmt.Sprintf("%s..%s", e.Min, e.Max)
	case e.Max > 0:
		return "at most " + e.Max.String()
	}
	return "at least " + e.Min.String()
}

// Validate checks the expectation is well formed.
func (e *Expected) Validate() error {
	if len(e.Result) == 0 {
		return fmt.Errorf("result: required")
	}
	if e.BodyMatches != "" {
		if _, err := regexp.Compile(e.BodyMatches); err != nil {
			return fmt.Errorf("bodyMatches: %v", err)
		}
	}
	if e.HTTPVersion != "" && e.HTTPVersion != "1.1" && e.HTTPVersion != "2" && e.HTTPVersion != "1.0" {
		return fmt.Errorf("httpVersion: %q, want 1.0, 1.1 or 2", e.HTTPVersion)
	}
	if e.ExitCode != nil {
		c := *e.ExitCode
		if c < 0 || c > 255 {
			return fmt.Errorf("exitCode: %d, want a process exit code 0..255", c)
		}
		// An exit code no acceptable result can show would make the expectation fail always.
		ok := false
		for _, r := range e.Result {
			switch r.Kind {
			case KindStatus:
				ok = ok || c == 0
			case KindReset:
				ok = ok || contains(ResetExitCodes, c)
			case KindTimeout:
				ok = ok || contains(TimeoutExitCodes, c) || (e.CNIRejects && c == RefusedExitCode)
			}
		}
		if !ok {
			return fmt.Errorf("exitCode: %d can never go with result %s (a status is exit 0, reset %v, timeout %v)", c, e.Result, ResetExitCodes, TimeoutExitCodes)
		}
	}
	if e.Elapsed != nil {
		switch {
		case e.Elapsed.Min < 0:
			return fmt.Errorf("elapsed.min: %s is negative", e.Elapsed.Min)
		case e.Elapsed.Max < 0:
			return fmt.Errorf("elapsed.max: %s is negative", e.Elapsed.Max)
		case e.Elapsed.Min == 0 && e.Elapsed.Max == 0:
			return fmt.Errorf("elapsed: give min, max or both, above 0")
		case e.Elapsed.Max > 0 && e.Elapsed.Min > e.Elapsed.Max:
			return fmt.Errorf("elapsed: min %s is above max %s", e.Elapsed.Min, e.Elapsed.Max)
		}
	}
	if len(e.Hops) > 0 && e.First != nil {
		return fmt.Errorf("first: give hops (the whole chain) or first, not both")
	}
	for i, h := range e.Hops {
		if h.Status < 200 || h.Status > 599 {
			return fmt.Errorf("hops[%d].status: %d, want a final HTTP status 200..599 (1xx interim responses are not hops)", i, h.Status)
		}
	}
	if e.First != nil && (e.First.Status < 200 || e.First.Status > 599) {
		return fmt.Errorf("first.status: %d, want a final HTTP status 200..599 (1xx interim responses are not hops)", e.First.Status)
	}
	if e.CNIRejects {
		timeout := false
		for _, r := range e.Result {
			timeout = timeout || r.Kind == KindTimeout
		}
		if !timeout {
			return fmt.Errorf("cniRejects: only applies to result timeout, the result is %s", e.Result)
		}
	}
	return nil
}

// Positive reports whether the expectation is of a response arriving (an HTTP status below 400);
// positive results need several successes in a row, negative ones must keep holding.
func (e *Expected) Positive() bool {
	for _, r := range e.Result {
		if r.Kind != KindStatus || r.Status >= 400 {
			return false
		}
	}
	return true
}

func (e *Expected) String() string {
	s := e.Result.String()
	if e.HTTPVersion != "" {
		s += " HTTP/" + e.HTTPVersion
	}
	for _, k := range sortedKeys(e.Headers) {
		s += fmt.Sprintf(", %s: %s", k, e.Headers[k])
	}
	if e.BodyContains != "" {
		s += fmt.Sprintf(", body has %q", e.BodyContains)
	}
	if e.BodyMatches != "" {
		s += fmt.Sprintf(", body ~ /%s/", e.BodyMatches)
	}
	if e.CNIRejects {
		s += " (or refused: the CNI rejects)"
	}
	if e.ExitCode != nil {
		s += fmt.Sprintf(", exit %d", *e.ExitCode)
	}
	if e.Elapsed != nil {
		s += ", in " + e.Elapsed.String()
	}
	if len(e.Hops) > 0 {
		var hs []string
		for _, h := range e.Hops {
			hs = append(hs, h.String())
		}
		s += ", responses " + strings.Join(hs, " -> ")
	}
	if e.First != nil {
		s += ", first response " + e.First.String()
	}
	return s
}

// Observed is what one curl run showed, captured together.
type Observed struct {
	// ExitCode is curl's exit code.
	ExitCode int `json:"exitCode"`
	// HTTPCode is %{http_code}: 0 when no response arrived.
	HTTPCode    int    `json:"httpCode"`
	HTTPVersion string `json:"httpVersion,omitempty"`
	// Headers of the final response, names lower-cased; repeated headers joined with ", ".
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	// ErrorMessage is curl's own error (%{errormsg}, or stderr).
	ErrorMessage string        `json:"error,omitempty"`
	Duration     time.Duration `json:"duration"`
	// DurationUnknown marks a prediction: Duration is the model's own time, not the request's, so
	// an elapsed-time expectation cannot be evaluated on it.
	DurationUnknown bool `json:"durationUnknown,omitempty"`
	// Hops are the responses received, in order: one, or with curl -L one per response of the
	// redirect chain (1xx interim responses left out). The last is the final response.
	Hops []Hop `json:"hops,omitempty"`
	// Probe is the marker the backend gave this request: the access-log entries the request
	// caused carry it in field LogFieldProbe, so a log check reads the entries of its own requests.
	Probe string `json:"probe,omitempty"`
}

// Hop is one response curl received.
type Hop struct {
	Status      int    `json:"status"`
	HTTPVersion string `json:"httpVersion,omitempty"`
	// Headers, names lower-cased; repeated headers joined with ", ".
	Headers map[string]string `json:"headers,omitempty"`
}

// Summary is a short human form: "301", "reset (exit 35)", "000 exit 7".
func (o Observed) Summary() string {
	switch {
	case o.ExitCode == 0 && o.HTTPCode > 0:
		if o.HTTPVersion != "" {
			return fmt.Sprintf("%d HTTP/%s", o.HTTPCode, o.HTTPVersion)
		}
		return strconv.Itoa(o.HTTPCode)
	case o.HTTPCode == 0 && contains(ResetExitCodes, o.ExitCode):
		return fmt.Sprintf("reset (exit %d)", o.ExitCode)
	case o.HTTPCode == 0 && contains(TimeoutExitCodes, o.ExitCode):
		return fmt.Sprintf("timeout (exit %d)", o.ExitCode)
	case o.HTTPCode == 0 && o.ExitCode == RefusedExitCode:
		return fmt.Sprintf("refused (exit %d)", o.ExitCode)
	default:
		return fmt.Sprintf("http %03d exit %d %s", o.HTTPCode, o.ExitCode, o.ErrorMessage)
	}
}

// Is reports whether the observation is the given single result (a timeout is exit 28 only; see
// Expected.CNIRejects for exit 7).
func (o Observed) Is(r Result) bool {
	switch r.Kind {
	case KindStatus:
		return o.ExitCode == 0 && o.HTTPCode == r.Status
	case KindReset:
		return o.HTTPCode == 0 && contains(ResetExitCodes, o.ExitCode)
	case KindTimeout:
		return o.HTTPCode == 0 && contains(TimeoutExitCodes, o.ExitCode)
	}
	return false
}

// Match compares an observation with an expectation; the error says what differed.
func Match(e *Expected, o Observed) error {
	ok := false
	for _, r := range e.Result {
		if o.Is(r) || (r.Kind == KindTimeout && e.CNIRejects && o.HTTPCode == 0 && o.ExitCode == RefusedExitCode) {
			ok = true
			break
		}
	}
	if !ok {
		return fmt.Errorf("expected %s, observed %s", e.Result, o.Summary())
	}
	if e.HTTPVersion != "" && o.HTTPVersion != e.HTTPVersion {
		return fmt.Errorf("expected HTTP/%s, observed HTTP/%s", e.HTTPVersion, o.HTTPVersion)
	}
	if err := matchHeaders(e.Headers, o.Headers); err != nil {
		return fmt.Errorf("expected %w", err)
	}
	if e.ExitCode != nil && o.ExitCode != *e.ExitCode {
		return fmt.Errorf("expected curl exit %d, observed exit %d (%s)", *e.ExitCode, o.ExitCode, o.Summary())
	}
	if len(e.Hops) > 0 {
		if len(o.Hops) != len(e.Hops) {
			return fmt.Errorf("expected %d responses (%s), observed %d (%s)", len(e.Hops), hopsExpected(e.Hops), len(o.Hops), hopsObserved(o.Hops))
		}
		for i, h := range e.Hops {
			if err := h.match(o.Hops[i]); err != nil {
				return fmt.Errorf("expected response %d of %d: %v", i+1, len(e.Hops), err)
			}
		}
	}
	if e.First != nil {
		if len(o.Hops) == 0 {
			return fmt.Errorf("expected a first response %s, observed no response", e.First)
		}
		if err := e.First.match(o.Hops[0]); err != nil {
			return fmt.Errorf("expected first response: %v", err)
		}
	}
	if e.BodyContains != "" && !strings.Contains(o.Body, e.BodyContains) {
		return fmt.Errorf("expected body to contain %q, observed body %q", e.BodyContains, clip(o.Body, 300))
	}
	if e.BodyMatches != "" {
		re, err := regexp.Compile(e.BodyMatches)
		if err != nil {
			return fmt.Errorf("bodyMatches: %v", err)
		}
		if !re.MatchString(o.Body) {
			return fmt.Errorf("expected body to match /%s/, observed body %q", e.BodyMatches, clip(o.Body, 300))
		}
	}
	// Last: everything observable agreed, so a prediction without a duration is out of model,
	// never a pass or a fail.
	if e.Elapsed != nil {
		if o.DurationUnknown {
			return &OutOfModelError{Need: "elapsed time: a prediction does not know how long the request takes (expected " + e.Elapsed.String() + ")"}
		}
		if o.Duration < e.Elapsed.Min || (e.Elapsed.Max > 0 && o.Duration > e.Elapsed.Max) {
			return fmt.Errorf("expected curl to take %s, observed %s (%s)", e.Elapsed, o.Duration.Round(time.Millisecond), o.Summary())
		}
	}
	return nil
}

func hopsExpected(hs []HopExpected) string {
	var out []string
	for _, h := range hs {
		out = append(out, strconv.Itoa(h.Status))
	}
	return strings.Join(out, " -> ")
}

func hopsObserved(hs []Hop) string {
	if len(hs) == 0 {
		return "no response"
	}
	var out []string
	for _, h := range hs {
		out = append(out, strconv.Itoa(h.Status))
	}
	return strings.Join(out, " -> ")
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// OutOfModelError reports a check whose outcome depends on behaviour a predicting backend does not
// model. The runner reports it as skipped with the reason, never as a pass.
type OutOfModelError struct {
	// Need names the part of Envoy (or of the platform) the prediction would need.
	Need string
}

func (e *OutOfModelError) Error() string { return "out of model: " + e.Need }

// matchHeaders checks that every wanted header was observed with its value (observed names are
// lower case); the error names the first that differs.
func matchHeaders(want, observed map[string]string) error {
	for _, k := range sortedKeys(want) {
		got, present := observed[strings.ToLower(k)]
		if !present {
			return fmt.Errorf("header %s: %s, observed no such header", k, want[k])
		}
		if got != want[k] {
			return fmt.Errorf("header %s: %s, observed %s: %s", k, want[k], k, got)
		}
	}
	return nil
}
