# Provenance: a valid semantic version, and training data only from approved sources.
package wharf.governance

import rego.v1

checked contains "semver_version"

deny contains v if {
	not semver.is_valid(input.manifest.model.version)
	v := {
		"rule": "semver_version",
		"field": "model.version",
		"value": input.manifest.model.version,
		"threshold": "MAJOR.MINOR.PATCH",
		"message": sprintf("model version %q is not a semantic version: use MAJOR.MINOR.PATCH, e.g. 1.4.0", [input.manifest.model.version]),
	}
}

checked contains "data_source_approved"

deny contains v if {
	some i
	src := input.manifest.data_sources[i]
	not src.name in {n | some n in data.wharf.config.approved_data_sources}
	v := {
		"rule": "data_source_approved",
		"field": sprintf("data_sources[%d].name", [i]),
		"value": src.name,
		"threshold": "the approved data source list",
		"message": sprintf("data source %q is not approved: use an approved source, or have it reviewed and added to governance.approved_data_sources", [src.name]),
	}
}

deny contains v if {
	count(object.get(input.manifest, "data_sources", [])) == 0
	v := {
		"rule": "data_source_approved",
		"field": "data_sources",
		"value": [],
		"threshold": "at least one approved data source",
		"message": "no training data sources declared: list them under `data_sources` so their approval can be checked",
	}
}
