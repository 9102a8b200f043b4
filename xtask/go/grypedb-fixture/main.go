// Command grypedb-fixture builds a Grype v6 database with Grype's own builder from
// vunnel-format provider workspaces (each holds metadata.json, a listing file and
// results/*.json envelopes), so tests can run the real Grype offline against known findings:
//
//	grypedb-fixture OUT WORKSPACE...
//	GRYPE_DB_CACHE_DIR=DIR grype db import OUT/vulnerability.db
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/anchore/grype/grype/db"
	"github.com/anchore/grype/grype/db/provider"
)

func main() {
	out := os.Args[1]
	var states provider.States
	for _, ws := range os.Args[2:] {
		s, err := provider.ReadState(filepath.Join(ws, "metadata.json"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		states = append(states, *s)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		panic(err)
	}
	err := db.Build(db.BuildConfig{
		SchemaVersion: 6,
		Directory:     out,
		States:        states,
		Timestamp:     time.Now().UTC(),
		Hydrate:       true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
