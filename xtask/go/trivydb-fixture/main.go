// Command trivydb-fixture writes a small Trivy vulnerability database from a JSON spec,
// so tests can run the real Trivy offline against known findings:
//
//	trivydb-fixture SPEC.json CACHE_DIR
//	trivy image --skip-db-update --offline-scan --cache-dir CACHE_DIR ...
//
// It writes CACHE_DIR/db/trivy.db (BoltDB, replaced if present) and CACHE_DIR/db/metadata.json
// with Trivy's own DB module (github.com/aquasecurity/trivy-db, the version Trivy v0.59.1
// requires), schema version 2, through the same calls Trivy's DB builder makes.
//
// # Spec
//
// Unknown fields are an error. Every list is optional.
//
//	{
//	  "updated_at":  "2025-01-01T00:00:00Z",  // optional; default now (metadata UpdatedAt)
//	  "next_update": "2125-01-01T00:00:00Z",  // optional; default updated_at + 100 years, so
//	                                          // even a run without --skip-db-update keeps it
//	  "os": [{
//	    "platform": "debian 12",      // the OS bucket: "debian <major>", "ubuntu 22.04",
//	                                  // "alpine 3.19", "amazon linux 2", ...
//	    "package":  "glibc",          // the name Trivy's OS detector looks up: the SOURCE
//	                                  // package for debian/ubuntu/alpine (dpkg "Source:",
//	                                  // e.g. glibc for libc6; the binary name when there is
//	                                  // no Source line), the binary name for amazon
//	    "id":       "CVE-2099-0001",
//	    "fixed":    "2.36-9+deb12u7", // FixedVersion; empty or absent = unfixed
//	    "status":   "affected",       // optional, for unfixed ones: affected, will_not_fix,
//	                                  // fix_deferred, end_of_life, under_investigation
//	    "severity": "HIGH",           // optional per-package vendor severity (Debian has
//	                                  // these); it overrides the vulnerability's
//	    "vendor_ids": ["DSA-0000-1"]  // optional
//	  }],
//	  "lang": [{
//	    "ecosystem":  "pip",          // npm, pip, rubygems, cargo, composer, go, maven,
//	                                  // nuget, erlang, pub, swift, cocoapods, ...
//	    "package":    "numpy",        // normalised as Trivy does (pip: lower case, _ -> -)
//	    "id":         "CVE-2021-34141",
//	    "vulnerable": ["<1.22"],      // version constraints in the ecosystem's syntax
//	                                  // (pip: PEP 440, e.g. ">=1.0, <1.22"); OR-ed together
//	    "patched":    ["1.22"],       // fixed versions (GHSA stores bare versions); a
//	                                  // version matching one of these is not reported
//	    "unaffected": [],             // optional, like patched
//	    "source":     "GitHub Security Advisory pip"  // optional data source name; the
//	                                  // bucket is "<ecosystem>::<source>"; default GHSA's
//	  }],
//	  "vulnerabilities": [{
//	    "id":          "CVE-2021-34141",
//	    "title":       "...",
//	    "description": "...",
//	    "severity":    "MEDIUM",      // fallback severity
//	    "vendor_severity": {"ghsa": "MEDIUM", "nvd": 2, "debian": "HIGH"},
//	                                  // by data source ID; names or 0..4 (UNKNOWN, LOW,
//	                                  // MEDIUM, HIGH, CRITICAL). Trivy reports the one of
//	                                  // the advisory's data source (debian for "debian N",
//	                                  // ghsa for the default lang buckets), else nvd's,
//	                                  // else "severity"
//	    "cvss": {"nvd": {"V3Vector": "CVSS:3.1/...", "V3Score": 5.3}},
//	    "cwe_ids": ["CWE-20"], "references": ["https://..."],
//	    "published": "2021-12-17T00:00:00Z", "last_modified": "2021-12-17T00:00:00Z"
//	  }]
//	}
//
// Every advisory's ID should have a "vulnerabilities" entry: without one Trivy still
// reports the finding, with severity UNKNOWN and a warning (the program warns too).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	"github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/bucket"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/vulnerability"
	bolt "go.etcd.io/bbolt"
)

type spec struct {
	UpdatedAt       *time.Time     `json:"updated_at"`
	NextUpdate      *time.Time     `json:"next_update"`
	OS              []osAdvisory   `json:"os"`
	Lang            []langAdvisory `json:"lang"`
	Vulnerabilities []vulnEntry    `json:"vulnerabilities"`
}

type osAdvisory struct {
	Platform  string   `json:"platform"`
	Package   string   `json:"package"`
	ID        string   `json:"id"`
	Fixed     string   `json:"fixed"`
	Status    string   `json:"status"`
	Severity  severity `json:"severity"`
	VendorIDs []string `json:"vendor_ids"`
}

type langAdvisory struct {
	Ecosystem  string   `json:"ecosystem"`
	Package    string   `json:"package"`
	ID         string   `json:"id"`
	Vulnerable []string `json:"vulnerable"`
	Patched    []string `json:"patched"`
	Unaffected []string `json:"unaffected"`
	Source     string   `json:"source"`
}

type vulnEntry struct {
	ID             string                `json:"id"`
	Title          string                `json:"title"`
	Description    string                `json:"description"`
	Severity       severity              `json:"severity"`
	VendorSeverity map[string]severity   `json:"vendor_severity"`
	CVSS           map[string]types.CVSS `json:"cvss"`
	CweIDs         []string              `json:"cwe_ids"`
	References     []string              `json:"references"`
	Published      *time.Time            `json:"published"`
	LastModified   *time.Time            `json:"last_modified"`
}

// severity is a Trivy severity given as its name ("HIGH") or number (3).
type severity types.Severity

func (s *severity) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		if n < 0 || n >= len(types.SeverityNames) {
			return fmt.Errorf("severity %d out of range 0..%d", n, len(types.SeverityNames)-1)
		}
		*s = severity(n)
		return nil
	}
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("severity must be a name or a number: %s", b)
	}
	v, err := types.NewSeverity(strings.ToUpper(name))
	if err != nil {
		return err
	}
	*s = severity(v)
	return nil
}

// osSources are the data sources Trivy's DB records for the OS buckets, by the
// platform's first word(s) (vulnsrc/<distro>/<distro>.go in trivy-db).
var osSources = []struct {
	prefix string
	source types.DataSource
}{
	{"debian ", types.DataSource{ID: vulnerability.Debian, Name: "Debian Security Tracker", URL: "https://salsa.debian.org/security-tracker-team/security-tracker"}},
	{"ubuntu ", types.DataSource{ID: vulnerability.Ubuntu, Name: "Ubuntu CVE Tracker", URL: "https://git.launchpad.net/ubuntu-cve-tracker"}},
	{"alpine ", types.DataSource{ID: vulnerability.Alpine, Name: "Alpine Secdb", URL: "https://secdb.alpinelinux.org/"}},
	{"amazon linux ", types.DataSource{ID: vulnerability.Amazon, Name: "Amazon Linux Security Center", URL: "https://alas.aws.amazon.com/"}},
	{"wolfi", types.DataSource{ID: vulnerability.Wolfi, Name: "Wolfi Secdb", URL: "https://packages.wolfi.dev/os/security.json"}},
	{"chainguard", types.DataSource{ID: vulnerability.Chainguard, Name: "Chainguard Security Data", URL: "https://packages.cgr.dev/chainguard/security.json"}},
}

// ghsaEcosystems is GHSA's name of each ecosystem (trivy-db vulnsrc/ghsa), which names the
// default language bucket "<ecosystem>::GitHub Security Advisory <name>".
var ghsaEcosystems = map[types.Ecosystem]string{
	vulnerability.Composer:  "Composer",
	vulnerability.Go:        "Go",
	vulnerability.Maven:     "Maven",
	vulnerability.Npm:       "npm",
	vulnerability.NuGet:     "NuGet",
	vulnerability.Pip:       "pip",
	vulnerability.RubyGems:  "RubyGems",
	vulnerability.Cargo:     "Rust",
	vulnerability.Erlang:    "Erlang",
	vulnerability.Pub:       "Pub",
	vulnerability.Swift:     "Swift",
	vulnerability.Cocoapods: "Swift",
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: trivydb-fixture SPEC.json CACHE_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "trivydb-fixture:", err)
		os.Exit(1)
	}
}

func run(specPath, cacheDir string) error {
	raw, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var s spec
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("%s: %w", specPath, err)
	}

	dbDir := filepath.Join(cacheDir, "db")
	for _, f := range []string{db.Path(dbDir), metadata.Path(dbDir)} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if err := db.Init(dbDir); err != nil {
		return err
	}
	defer db.Close()
	dbc := db.Config{}

	known := map[string]bool{}
	for _, v := range s.Vulnerabilities {
		known[v.ID] = true
	}
	var ids []string
	err = dbc.Connection().Update(func(tx *bolt.Tx) error {
		// As trivy-db's sources do: each advisory into "advisory-detail/<id>/<bucket>/<pkg>",
		// its bucket's data source into "data-source"; then SaveAdvisoryDetails copies them
		// into "<bucket>/<pkg>/<id>", the layout Trivy reads.
		for i, a := range s.OS {
			if a.Platform == "" || a.Package == "" || a.ID == "" {
				return fmt.Errorf("os[%d]: platform, package and id are required", i)
			}
			src, ok := osSource(a.Platform)
			if !ok {
				return fmt.Errorf("os[%d]: unsupported platform %q (debian N, ubuntu N.N, alpine N.N, amazon linux N, wolfi, chainguard)", i, a.Platform)
			}
			adv := types.Advisory{
				VendorIDs:    a.VendorIDs,
				Severity:     types.Severity(a.Severity),
				FixedVersion: a.Fixed,
			}
			if a.Status != "" {
				adv.Status = types.NewStatus(a.Status)
				if adv.Status == types.StatusUnknown {
					return fmt.Errorf("os[%d]: unknown status %q (one of %s)", i, a.Status, strings.Join(types.Statuses, ", "))
				}
			}
			if err := dbc.PutAdvisoryDetail(tx, a.ID, a.Package, []string{a.Platform}, &adv); err != nil {
				return err
			}
			if err := dbc.PutDataSource(tx, a.Platform, src); err != nil {
				return err
			}
			ids = append(ids, a.ID)
		}
		for i, a := range s.Lang {
			if a.Ecosystem == "" || a.Package == "" || a.ID == "" {
				return fmt.Errorf("lang[%d]: ecosystem, package and id are required", i)
			}
			if len(a.Vulnerable) == 0 && len(a.Patched) == 0 {
				return fmt.Errorf("lang[%d]: vulnerable or patched is required", i)
			}
			eco := types.Ecosystem(a.Ecosystem)
			src := types.DataSource{ID: vulnerability.GHSA, Name: a.Source}
			if a.Source == "" {
				name, ok := ghsaEcosystems[eco]
				if !ok {
					return fmt.Errorf("lang[%d]: no GHSA source for ecosystem %q: give \"source\"", i, a.Ecosystem)
				}
				src.Name = "GitHub Security Advisory " + name
				src.URL = "https://github.com/advisories?query=type%3Areviewed+ecosystem%3A" + strings.ToLower(name)
			}
			bkt := bucket.Name(eco, src.Name)
			adv := types.Advisory{
				VulnerableVersions: a.Vulnerable,
				PatchedVersions:    a.Patched,
				UnaffectedVersions: a.Unaffected,
			}
			pkg := vulnerability.NormalizePkgName(eco, a.Package)
			if err := dbc.PutAdvisoryDetail(tx, a.ID, pkg, []string{bkt}, &adv); err != nil {
				return err
			}
			if err := dbc.PutDataSource(tx, bkt, src); err != nil {
				return err
			}
			ids = append(ids, a.ID)
		}
		for _, id := range ids {
			if err := dbc.SaveAdvisoryDetails(tx, id); err != nil {
				return err
			}
			if !known[id] {
				fmt.Fprintf(os.Stderr, "trivydb-fixture: warning: %s has no \"vulnerabilities\" entry; Trivy will report it as UNKNOWN\n", id)
				known[id] = true // warn once
			}
		}
		if len(ids) > 0 {
			if err := tx.DeleteBucket([]byte("advisory-detail")); err != nil {
				return err
			}
		}
		// The "vulnerability" bucket, in the form trivy-db's builder leaves it (Normalize).
		for i, v := range s.Vulnerabilities {
			if v.ID == "" {
				return fmt.Errorf("vulnerabilities[%d]: id is required", i)
			}
			vuln := types.Vulnerability{
				Title:            v.Title,
				Description:      v.Description,
				CweIDs:           v.CweIDs,
				References:       v.References,
				PublishedDate:    v.Published,
				LastModifiedDate: v.LastModified,
			}
			if v.Severity != 0 {
				vuln.Severity = types.Severity(v.Severity).String()
			}
			if len(v.VendorSeverity) > 0 {
				vuln.VendorSeverity = types.VendorSeverity{}
				for src, sev := range v.VendorSeverity {
					vuln.VendorSeverity[types.SourceID(src)] = types.Severity(sev)
				}
			}
			if len(v.CVSS) > 0 {
				vuln.CVSS = types.VendorCVSS{}
				for src, c := range v.CVSS {
					vuln.CVSS[types.SourceID(src)] = c
				}
			}
			if err := dbc.PutVulnerability(tx, v.ID, vuln); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	now := time.Now().UTC()
	updated := now
	if s.UpdatedAt != nil {
		updated = s.UpdatedAt.UTC()
	}
	next := updated.AddDate(100, 0, 0)
	if s.NextUpdate != nil {
		next = s.NextUpdate.UTC()
	}
	return metadata.NewClient(dbDir).Update(metadata.Metadata{
		Version:      db.SchemaVersion,
		NextUpdate:   next,
		UpdatedAt:    updated,
		DownloadedAt: now,
	})
}

func osSource(platform string) (types.DataSource, bool) {
	for _, o := range osSources {
		if strings.HasPrefix(platform, o.prefix) {
			return o.source, true
		}
	}
	return types.DataSource{}, false
}
