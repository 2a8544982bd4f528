package server

import (
	"net/http"

	"github.com/onestack/webhooks/portal"
)

// routes serves the tenant portal under /portal/ and the API everywhere
// else. The portal serves its actions through the same API handler.
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
