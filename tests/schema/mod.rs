//! Validation against docs/report.schema.json, for the test binaries that produce reports
//! (apart from tests/common: the bench crate shares that one and has no JSON Schema crate).
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "a private module of each test binary")]

use std::path::PathBuf;

/// docs/report.schema.json compiled twice: for a report (the document's root) and for a
/// batch summary (its `$defs/summary`).
pub fn report_schemas() -> (jsonschema::Validator, jsonschema::Validator) {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json"),
    )
    .expect("docs/report.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    let report = jsonschema::validator_for(&schema).expect("schema compiles");
    let mut summary = schema;
    let root = summary.as_object_mut().expect("an object");
    for k in [
        "type",
        "required",
        "properties",
        "additionalProperties",
        "allOf",
    ] {
        root.remove(k);
    }
    root.insert("$ref".into(), "#/$defs/summary".into());
    let summary = jsonschema::validator_for(&summary).expect("summary schema compiles");
    (report, summary)
}

/// Every report of `out` and its summary are valid against docs/report.schema.json.
pub fn assert_schema(out: &veridoc::verify::VerifyOutput) {
    let (report, summary) = report_schemas();
    for r in &out.reports {
        let v = serde_json::to_value(r).expect("a report serializes");
        let errors: Vec<String> = report.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: report invalid: {errors:?}", r.name);
    }
    let v = serde_json::to_value(&out.summary).expect("a summary serializes");
    let errors: Vec<String> = summary.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "summary invalid: {errors:?}");
}
