# Model quality: accuracy and F1 must reach the environment's minimums.
package wharf.governance

import rego.v1

checked contains "min_accuracy"

deny contains v if {
	value := input.manifest.metrics.accuracy
	limit := data.wharf.config.thresholds.min_accuracy
	value < limit
	v := {
		"rule": "min_accuracy",
		"field": "metrics.accuracy",
		"value": value,
		"threshold": limit,
		"message": sprintf("accuracy is %v, below the minimum of %v required in %s: improve the model or re-evaluate it on the agreed test set", [value, limit, input.environment]),
	}
}

checked contains "min_f1"

deny contains v if {
	value := input.manifest.metrics.f1
	limit := data.wharf.config.thresholds.min_f1
	value < limit
	v := {
		"rule": "min_f1",
		"field": "metrics.f1",
		"value": value,
		"threshold": limit,
		"message": sprintf("F1 score is %v, below the minimum of %v required in %s: the model trades too much precision or recall", [value, limit, input.environment]),
	}
}
