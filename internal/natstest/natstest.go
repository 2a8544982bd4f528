// Package natstest runs an embedded NATS server with JetStream for one
// test. It imports only NATS (and internal/poll, a leaf), so the internal
// tests of any package can use it; testenv runs the whole product instead.
package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/poll"
)

// Options place the server; the zero value means a temporary directory and
// a random port.
type Options struct {
	Dir  string
	Port int
}

// Server is a running embedded server.
type Server struct {
	*server.Server
}

// Start runs a server until the test ends (or until Shutdown).
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Port == 0 {
		o.Port = -1
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: o.Port, JetStream: true, StoreDir: o.Dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(time.Minute) {
		t.Fatal("nats server not ready in a minute")
	}
	t.Cleanup(s.Shutdown)
	return &Server{s}
}

// Connect opens a connection, with its JetStream context, closed when the
// test ends.
func (s *Server) Connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Cluster is a JetStream cluster of embedded servers on loopback, for
// tests of replicated streams and of losing a node.
type Cluster struct {
	Servers []*Server
	opts    []*server.Options
}

// StartCluster runs a cluster of n servers (routes between them on
// loopback ports, each with its own storage) until the test ends, and
// waits until JetStream has a meta leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	var c *Cluster
	for attempt := 1; ; attempt++ {
		var err error
		if c, err = startCluster(t, n); err == nil {
			break
		}
		if attempt == clusterAttempts {
			t.Fatal(err)
		}
		t.Logf("%v; starting the cluster again on other ports", err)
	}
	poll.Until(t, 2*time.Minute, fmt.Sprintf("a stream placed on %d nodes", n), func() bool {
		return c.hasMetaLeader() && c.placesReplicated(n)
	})
	return c
}

// A cluster's route ports are found free a moment before its servers
// listen on them, and another test's server or an outgoing connection can
// take one in between: that server never listens. So a cluster whose
// servers do not all listen within clusterListenWait is started again on
// other ports, clusterAttempts times at most.
const (
	clusterListenWait = 20 * time.Second
	clusterAttempts   = 3
)

// startCluster starts n servers and waits until each listens; if one does
// not, it shuts them all down and says which.
func startCluster(t testing.TB, n int) (*Cluster, error) {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))})
	}
	c := &Cluster{}
	for i := range n {
		o := &server.Options{
			ServerName: "n" + strconv.Itoa(i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		}
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("nats server %d: %v", i+1, err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		c.Servers = append(c.Servers, &Server{s})
		c.opts = append(c.opts, o)
	}
	for i, s := range c.Servers {
		if !s.ReadyForConnections(clusterListenWait) {
			for _, s := range c.Servers {
				s.Shutdown()
			}
			return nil, fmt.Errorf("cluster server %d not listening within %v (its route port %d may have been taken)", i+1, clusterListenWait, ports[i])
		}
	}
	return c, nil
}

// placesReplicated reports whether a stream with n replicas can be made
// (every peer is known and online): it makes one and deletes it.
func (c *Cluster) placesReplicated(n int) bool {
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PROBE", Subjects: []string{"probe.>"}, Replicas: n}); err != nil {
		return false
	}
	_ = js.DeleteStream(ctx, "PROBE")
	return true
}

func (c *Cluster) hasMetaLeader() bool {
	for _, s := range c.Servers {
		if s.Running() && s.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// URLs is the comma-separated client URLs of the running servers, for
// nats.Connect: a client fails over between them.
func (c *Cluster) URLs() string {
	var urls []string
	for _, s := range c.Servers {
		if s.Running() {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// ByName returns the running server of that name (nil if none).
func (c *Cluster) ByName(name string) *Server {
	for _, s := range c.Servers {
		if s.Name() == name && s.Running() {
			return s
		}
	}
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
