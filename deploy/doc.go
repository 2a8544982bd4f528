// Package deploy holds the ready-made operations files of webhookd, for
// Prometheus and Grafana (see the README's "Operations files"). Its Go
// code is the files themselves, embedded, for the tests that check them
// against the metrics the server registers.
package deploy

import _ "embed"

// Rules are the Prometheus alerting rules (prometheus/webhooks-rules.yml).
//
//go:embed prometheus/webhooks-rules.yml
var Rules []byte

// Dashboard is the Grafana dashboard (grafana/webhooks-dashboard.json).
//
//go:embed grafana/webhooks-dashboard.json
var Dashboard []byte
