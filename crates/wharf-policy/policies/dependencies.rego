# Supply chain: every runtime dependency must be on the approved list.
package wharf.governance

import rego.v1

checked contains "dependency_allowlist"

deny contains v if {
	some i
	dep := input.manifest.dependencies[i]
	not lower(dep.name) in {lower(n) | some n in data.wharf.config.allowed_dependencies}
	v := {
		"rule": "dependency_allowlist",
		"field": sprintf("dependencies[%d].name", [i]),
		"value": dep.name,
		"threshold": "the approved dependency list",
		"message": sprintf("dependency %q is not on the approved list: remove it, or have it reviewed and added to governance.allowed_dependencies", [dep.name]),
	}
}
