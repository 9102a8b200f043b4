# Data drift: the drift score between training and recent production data must stay under the limit.
package wharf.governance

import rego.v1

checked contains "max_drift"

deny contains v if {
	not input.manifest.drift
	v := {
		"rule": "max_drift",
		"field": "drift.score",
		"value": null,
		"threshold": data.wharf.config.thresholds.max_drift,
		"message": "no drift evaluation: add a `drift` section with the score measured against recent production data",
	}
}

deny contains v if {
	value := input.manifest.drift.score
	limit := data.wharf.config.thresholds.max_drift
	value >= limit
	v := {
		"rule": "max_drift",
		"field": "drift.score",
		"value": value,
		"threshold": limit,
		"message": sprintf("drift score is %v, at or above the limit of %v in %s: the data has moved since training; retrain on recent data", [value, limit, input.environment]),
	}
}
