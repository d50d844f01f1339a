// Command goapp is the Go program of the benchmark's go-app image. It exists to carry real module
// versions in its build info; what it does hardly matters, but each import is used so the linker
// keeps the modules in the binary.
package main

import (
	"fmt"
	"os"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"gopkg.in/yaml.v3"
)

func main() {
	requests := prometheus.NewCounter(prometheus.CounterOpts{Name: "goapp_runs_total", Help: "Runs."})
	prometheus.MustRegister(requests)
	root := &cobra.Command{
		Use: "goapp NAME",
		RunE: func(cmd *cobra.Command, args []string) error {
			requests.Inc()
			name := "world"
			if len(args) > 0 {
				name = args[0]
			}
			out, err := yaml.Marshal(map[string]string{
				"greeting": cases.Title(language.English).String("hello " + name),
				"id":       uuid.NewString(),
			})
			if err != nil {
				return fmt.Errorf("marshal greeting: %w", err)
			}
			logrus.WithField("bytes", len(out)).Debug("greeting")
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	if err := root.Execute(); err != nil {
		os.Exit(1)
	}
}
