# Fairness: an evaluation must be present, and demographic parity difference must stay under the limit.
package wharf.governance

import rego.v1

checked contains "fairness_evaluated"

deny contains v if {
	not input.manifest.fairness
	v := {
		"rule": "fairness_evaluated",
		"field": "fairness",
		"value": null,
		"threshold": "a fairness evaluation",
		"message": "no fairness evaluation: add a `fairness` section with the protected attributes checked and the demographic parity difference measured",
	}
}

checked contains "max_demographic_parity"

deny contains v if {
	value := input.manifest.fairness.demographic_parity
	limit := data.wharf.config.thresholds.max_demographic_parity
	value >= limit
	v := {
		"rule": "max_demographic_parity",
		"field": "fairness.demographic_parity",
		"value": value,
		"threshold": limit,
		"message": sprintf("demographic parity difference is %v, at or above the limit of %v in %s: outcomes differ too much between groups of %v", [value, limit, input.environment, concat(", ", object.get(input.manifest.fairness, "protected_attributes", ["the protected attributes"]))]),
	}
}
