package dsn

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]DSN{
		"sqlite:///var/lib/cn.db":              {SQLite: "/var/lib/cn.db"},
		"sqlite3:///var/lib/cn.db":             {SQLite: "/var/lib/cn.db"},
		"file://data/cn.db":                    {SQLite: "data/cn.db"},
		"./cn.db":                              {SQLite: "./cn.db"},
		"/abs/cn.db":                           {SQLite: "/abs/cn.db"},
		"postgres://u@db/crowsnest":            {Postgres: "postgres://u@db/crowsnest"},
		"postgresql:///x?host=/run/postgresql": {Postgres: "postgresql:///x?host=/run/postgresql"},
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "mysql://root:hunter2@db/x", "host=db user=u password=hunter2", "sqlite://", "sqlite://x?mode=ro",
		"postgres:///nohost", "mysql:hunter2@x"} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) accepted", in)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q) error shows the password: %v", in, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:hunter2@db/x":          "postgres://u:xxxxx@db/x",
		"postgres://u@db/x?password=hunter2": "postgres://u@db/x?password=xxxxx",
		"sqlite:///var/lib/cn.db":            "sqlite:///var/lib/cn.db",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
