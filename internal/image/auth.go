package image

import (
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Credentials from the environment, crowsnest's own names first, Docker Scout's as aliases so
// CI set-ups written for Scout keep working.
var envNames = [][3]string{
	{"CROWSNEST_REGISTRY_TOKEN", "CROWSNEST_REGISTRY_USER", "CROWSNEST_REGISTRY_PASSWORD"},
	{"DOCKER_SCOUT_REGISTRY_TOKEN", "DOCKER_SCOUT_REGISTRY_USER", "DOCKER_SCOUT_REGISTRY_PASSWORD"},
}

// EnvKeychain resolves every registry to the credentials in the environment (see envNames), or
// to anonymous when none are set. getenv is os.Getenv when nil.
type EnvKeychain struct {
	Getenv func(string) string
}

// Resolve implements authn.Keychain.
func (k EnvKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	getenv := k.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, n := range envNames {
		if tok := getenv(n[0]); tok != "" {
			return authn.FromConfig(authn.AuthConfig{RegistryToken: tok}), nil
		}
		if user := getenv(n[1]); user != "" {
			return &authn.Basic{Username: user, Password: getenv(n[2])}, nil
		}
	}
	return authn.Anonymous, nil
}

// DefaultKeychain is the environment, then Docker's config file and credential helpers.
func DefaultKeychain() authn.Keychain {
	return authn.NewMultiKeychain(EnvKeychain{}, authn.DefaultKeychain)
}
