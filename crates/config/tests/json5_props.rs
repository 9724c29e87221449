#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Properties of the JSON5 parser: never panics, reads serde_json's output back exactly.

use pincer_config::json5;
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.0e12f64..1.0e12)
            .prop_filter("non-integral", |f| f.fract() != 0.0)
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn never_panics(text in ".{0,200}") {
        let _ = json5::parse(&text, 0);
    }

    #[test]
    fn never_panics_on_json5ish_noise(text in "[{}\\[\\]:,'\"a-z0-9 \\n/*+.eExX-]{0,120}") {
        let _ = json5::parse(&text, 0);
    }

    #[test]
    fn agrees_with_serde_json(v in json_value()) {
        for text in [serde_json::to_string(&v).unwrap(), serde_json::to_string_pretty(&v).unwrap()] {
            // Compared with the original value: Rust's float parsing is correctly rounded
            // (serde_json's default float parser may be off by one ulp).
            let parsed = json5::parse(&text, 0).unwrap().to_value();
            prop_assert_eq!(&parsed, &v);
        }
    }
}
