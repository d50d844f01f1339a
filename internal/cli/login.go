package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/crowsnest-dev/crowsnest/internal/apiclient"
)

// credentialsFile holds tokens saved by `crowsnest login`, per server URL.
func credentialsFile() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the config directory: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "crowsnest", "credentials.json"), nil
}

func readCredentials() (map[string]string, error) {
	path, err := credentialsFile()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	creds := map[string]string{}
	if err := json.Unmarshal(data, &creds); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return creds, nil
}

// serverToken is CROWSNEST_TOKEN, else the token `crowsnest login` saved for server.
func serverToken(server string) (string, error) {
	if t := os.Getenv("CROWSNEST_TOKEN"); t != "" {
		return t, nil
	}
	creds, err := readCredentials()
	if err != nil {
		return "", err
	}
	if t, ok := creds[strings.TrimRight(server, "/")]; ok {
		return t, nil
	}
	return "", fmt.Errorf("no token for %s: set CROWSNEST_TOKEN or run crowsnest login %s", server, server)
}

// serverClient connects to --server with its token.
func serverClient(server string) (*apiclient.Client, error) {
	token, err := serverToken(server)
	if err != nil {
		return nil, err
	}
	return apiclient.New(server, token, nil)
}

func newLoginCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "login SERVER",
		Short: "Save a token for a crowsnest server (read from standard input)",
		Long: `Save a token (from crowsnest token create on the server) for SERVER, after checking it
works. The token is read from standard input, so it stays out of the shell history:

  crowsnest login https://crowsnest.example.com < token.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := strings.TrimRight(args[0], "/")
			line, err := bufio.NewReader(io.LimitReader(g.stdin, 4096)).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read the token: %w", err)
			}
			token := strings.TrimSpace(line)
			if token == "" {
				return errors.New("no token on standard input")
			}
			c, err := apiclient.New(server, token, nil)
			if err != nil {
				return err
			}
			if err := c.Get(context.WithoutCancel(cmd.Context()), "/api/v1/images", url.Values{"limit": {"1"}}, nil); err != nil {
				return fmt.Errorf("check the token against %s: %w", server, err)
			}
			creds, err := readCredentials()
			if err != nil {
				return err
			}
			creds[server] = token
			path, err := credentialsFile()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			data, _ := json.MarshalIndent(creds, "", "  ")
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, data, 0o600); err != nil {
				return err
			}
			if err := os.Rename(tmp, path); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Token for %s saved in %s\n", server, path)
			return nil
		},
	}
}
