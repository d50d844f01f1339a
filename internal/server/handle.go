package server

import "net/http"

// Handle registers an authenticated API route that needs scope, for packages that add routes
// to the API (notifications). It is meant to be called before the server starts serving.
func (s *Server) Handle(pattern, scope string, h http.HandlerFunc) { s.handle(pattern, scope, h) }
