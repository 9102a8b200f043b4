# Operations: monitoring must be on, and predictions must be explainable.
package wharf.governance

import rego.v1

checked contains "monitoring_enabled"

deny contains v if {
	not input.manifest.monitoring.enabled == true
	v := {
		"rule": "monitoring_enabled",
		"field": "monitoring.enabled",
		"value": object.get(object.get(input.manifest, "monitoring", {}), "enabled", null),
		"threshold": true,
		"message": "monitoring is not enabled: set monitoring.enabled to true so drift and errors in production are seen",
	}
}

checked contains "explainability_present"

deny contains v if {
	not input.manifest.explainability.method
	v := {
		"rule": "explainability_present",
		"field": "explainability",
		"value": null,
		"threshold": "an explainability method",
		"message": "no explainability: add an `explainability` section naming the method (e.g. shap) and its report",
	}
}
