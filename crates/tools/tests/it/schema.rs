use serde_json::Value;

use crate::common::Env;

/// Every tool we implement has the reference's exact name, description and parameters.
#[test]
fn builtin_schemas_match_reference() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/spec-samples/builtin-tool-schemas.json"
    );
    let reference: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let env = Env::new();
    let specs = env.registry.specs();
    assert_eq!(specs.len(), 16);
    for spec in specs {
        let want = reference
            .iter()
            .find(|t| t["function"]["name"] == spec.name.as_str())
            .unwrap_or_else(|| panic!("{} missing from reference", spec.name));
        assert_eq!(
            spec.to_function_json(),
            *want,
            "schema of {} differs",
            spec.name
        );
    }
}
