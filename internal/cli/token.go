package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crowsnest-dev/crowsnest/internal/server"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage API tokens: create, list, revoke",
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var scope, name string
	cmd := &cobra.Command{
		Use:   "create --scope read|push|admin [--name NAME]",
		Short: "Create a token and print it once (only its hash is stored)",
		Long: `Create an API token. read reads every API route; push also pushes SBOMs (agents);
admin also manages tokens. The token is printed once on stdout and cannot be shown again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret, t, err := server.NewToken(name, scope, time.Now())
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			svc, closeStore, err := g.openService(cmd.Context())
			if err != nil {
				return err
			}
			defer closeStore()
			if err := svc.Store.CreateToken(cmd.Context(), t); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, secret)
			fmt.Fprintf(g.stderr, "created token %s (scope %s); it is shown only this once\n", t.ID, t.Scope)
			return nil
		},
	}
	cmd.Flags().StringVar(&scope, "scope", "", "read, push or admin (required)")
	cmd.Flags().StringVar(&name, "name", "", "a name to recognize the token by")
	_ = cmd.MarkFlagRequired("scope")
	return cmd
}

func newTokenListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tokens (id, name, scope, created, last used)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, closeStore, err := g.openService(cmd.Context())
			if err != nil {
				return err
			}
			defer closeStore()
			ts, err := svc.Store.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tCREATED\tLAST USED")
			for _, t := range ts {
				used := "never"
				if !t.LastUsed.IsZero() {
					used = t.LastUsed.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Scope, t.Created.UTC().Format(time.RFC3339), used)
			}
			return tw.Flush()
		},
	}
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID...",
		Short: "Revoke tokens by id (as token list shows)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, closeStore, err := g.openService(cmd.Context())
			if err != nil {
				return err
			}
			defer closeStore()
			for _, id := range args {
				if err := svc.Store.RevokeToken(cmd.Context(), id); err != nil {
					return err
				}
				fmt.Fprintf(g.stderr, "revoked token %s\n", id)
			}
			return nil
		},
	}
}
