package envoymodel

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/egressconf/egressconf/pkg/outcome"
	"github.com/egressconf/egressconf/pkg/probe"
)

// TestPredictSaysWhatItCannotPredict: a followed redirect, a --resolve of the target and a
// --max-time race with Envoy's own timeout are out of model; what curl -L, -k and --resolve of
// another host do not change is predicted as before.
func TestPredictSaysWhatItCannotPredict(t *testing.T) {
	redirect := Response{Status: 301, Proto: "1.1", Headers: http.Header{"Location": {"https://h/"}}}
	ok := Response{Status: 403, Proto: "1.1", Headers: http.Header{"Server": {"envoy"}}}
	for _, c := range []struct {
		cmd  string
		resp Response
		oom  string // "" when predicted
	}{
		{"curl -sSL http://h/", redirect, "following a redirect (curl -L)"},
		{"curl -sSIL http://h/", redirect, "following a redirect"},
		{"curl -sSI http://h/", redirect, ""},
		{"curl -sSL http://h/", ok, ""},
		{"curl -sSL http://h/", Response{Reset: true}, ""},
		{"curl --resolve h:80:10.0.0.1 http://h/", ok, "--resolve pins the address of h"},
		{"curl --resolve h:443:10.0.0.1 http://h/", ok, ""},
		{"curl -m 3 http://h/", Response{Status: 504, Proto: "1.1"}, "elapsed time"},
		{"curl http://h/", Response{Status: 504, Proto: "1.1"}, ""},
		{"curl -k https://h/", ok, ""},
	} {
		req, err := probe.ParseCurl(c.cmd)
		if err != nil {
			t.Fatal(err)
		}
		obs, err := Predict(req, c.resp, 0)
		var oom *outcome.OutOfModelError
		switch {
		case c.oom != "" && (!errors.As(err, &oom) || !strings.Contains(err.Error(), c.oom)):
			t.Errorf("%s, %d: %v, want out of model: %q", c.cmd, c.resp.Status, err, c.oom)
		case c.oom == "" && err != nil:
			t.Errorf("%s, %d: %v, want a prediction", c.cmd, c.resp.Status, err)
		case c.oom == "" && !obs.DurationUnknown:
			t.Errorf("%s: a prediction claims to know its duration", c.cmd)
		case c.oom == "" && !c.resp.Reset && (len(obs.Hops) != 1 || obs.Hops[0].Status != c.resp.Status):
			t.Errorf("%s: hops %+v, want the one predicted response", c.cmd, obs.Hops)
		}
	}
}
