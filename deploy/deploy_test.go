package deploy

import (
	"os"
	"os/exec"
	"testing"
)

// promtool finds promtool, or skips (fails under CI=true, where .ci/run
// installs it).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		const msg = "promtool not installed (Debian's prometheus package ships it: sudo apt-get install -y prometheus)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// TestRulesCheck: promtool accepts the alerting rules.
func TestRulesCheck(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", "prometheus/webhooks-rules.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestRulesUnit: the rules' unit tests (prometheus/webhooks-rules.test.yml)
// pass: the delivery failure ratio, a stream near full, a replica not
// ready, each firing when it should and not before.
func TestRulesUnit(t *testing.T) {
	cmd := exec.Command(promtool(t), "test", "rules", "webhooks-rules.test.yml")
	cmd.Dir = "prometheus"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
