package server

import (
	"net/http"

	"github.com/onestack/webhooks/portal"
)

// routes serves the tenant portal under /portal/ and the API everywhere
// else. The portal makes its API calls with package client over an
// in-process transport into this same API handler, so they pass the same
// auth, limiter and contract as calls from outside.
func (s *Server) routes(apiHandler http.Handler, sessions *portal.Sessions) http.Handler {
	p := portal.New(portal.Config{
		API:       apiHandler,
		Sessions:  sessions,
		Directory: s.store.Index(),
		PublicURL: s.cfg.PublicURL,
		Logger:    s.logger,
	})
	mux := http.NewServeMux()
	mux.Handle(portal.Prefix, p)
	mux.Handle("/", apiHandler)
	return mux
}
