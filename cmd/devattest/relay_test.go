package main

import (
	"strings"
	"testing"
)

func TestRelayFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"relay", "--upstream", "unix:/x"}, "--listen is required"},
		{[]string{"relay", "--listen", "unix:/x"}, "--upstream is required"},
		{[]string{"relay", "--listen", "unix:/x", "--upstream", "nowhere"}, "neither unix:PATH nor HOST:PORT"},
		{[]string{"relay", "--listen", "unix:/x", "--upstream", "unix:/y", "--mode", "tamper:1:sideways:0"}, "neither up"},
		{[]string{"relay", "--listen", "unix:/x", "--upstream", "unix:/y", "--mode", "replay:1"}, "at least 2"},
	} {
		code, _, errOut := runCmd(tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error containing %q", tc.args, code, errOut, tc.want)
		}
	}
}
