//! Merging vCenters' List Tasks answers.
//!
//! Input layout: the first byte picks the family (even: `/rest`, odd: `/api`); the rest
//! is split on 0xFF (never part of UTF-8 text) into 1 to 4 upstream bodies.
//!
//! Invariants on every successful merge (`max_tasks: None`):
//! * the output is valid JSON of the family's shape, holding exactly `tasks` tasks,
//!   each info an object, with unique ids in strictly ascending order;
//! * idempotence: merging the output alone gives byte-identical output, the same task
//!   count and no duplicates;
//! * a duplicate keeps the copy of the earlier input;
//! * without duplicates, the output does not depend on the order of the inputs;
//! * `max_tasks: Some(tasks)` succeeds and `Some(tasks - 1)` is `TooMany`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;
use vcproxy::protocol::merge::{merge, MergeError, MergeOptions, UpstreamBody};
use vcproxy::Family;

const NAMES: [&str; 4] = ["vc-a", "vc-b", "vc-c", "vc-d"];

/// Reads an /api body as (id, info) pairs in document order. Infos are RawValues, the
/// same reader merge uses, so this accepts any depth and any number, and (unlike
/// `serde_json::Value` with serde_json's `raw_value` feature) treats the task id
/// `$serde_json::private::RawValue` as an ordinary key.
struct ApiPairs(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for ApiPairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ApiPairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of task id to info")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ApiPairs, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push(pair);
                }
                Ok(ApiPairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestBody {
    value: Vec<RestEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestEntry {
    key: String,
    value: Box<RawValue>,
}

fn check_shape(family: Family, body: &[u8], tasks: usize) {
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(body) {
        panic!(
            "merged output is not JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        );
    }
    let pairs: Vec<(String, Box<RawValue>)> = match family {
        Family::Api => {
            serde_json::from_slice::<ApiPairs>(body)
                .unwrap_or_else(|e| panic!("/api output has the wrong shape: {e}"))
                .0
        }
        Family::Rest => serde_json::from_slice::<RestBody>(body)
            .unwrap_or_else(|e| panic!("/rest output has the wrong shape: {e}"))
            .value
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect(),
    };
    assert_eq!(pairs.len(), tasks, "task count does not match the output");
    for (id, info) in &pairs {
        assert!(
            info.get().starts_with('{'),
            "info of {id:?} is not an object"
        );
    }
    assert!(
        pairs.windows(2).all(|w| w[0].0 < w[1].0),
        "task ids are not unique and ascending"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let family = if first & 1 == 0 {
        Family::Rest
    } else {
        Family::Api
    };
    let inputs: Vec<UpstreamBody> = rest
        .splitn(NAMES.len(), |&b| b == 0xFF)
        .zip(NAMES)
        .map(|(body, vcenter)| UpstreamBody { vcenter, body })
        .collect();
    let unlimited = MergeOptions { max_tasks: None };
    let Ok(m) = merge(family, &inputs, &unlimited) else {
        return;
    };

    check_shape(family, &m.body, m.tasks);
    for d in &m.duplicates {
        assert!(
            d.kept <= d.dropped,
            "duplicate {d:?} kept a later input's copy"
        );
    }

    // Idempotence.
    let again = merge(
        family,
        &[UpstreamBody {
            vcenter: "merged",
            body: &m.body,
        }],
        &unlimited,
    )
    .unwrap_or_else(|e| panic!("merged output does not merge again: {e}"));
    assert_eq!(again.body, m.body, "merge is not idempotent");
    assert_eq!(again.tasks, m.tasks, "re-merge changed the task count");
    assert!(again.duplicates.is_empty(), "merged output has duplicates");

    // Order independence when no copy had to be chosen.
    if m.duplicates.is_empty() && inputs.len() > 1 {
        let reversed: Vec<UpstreamBody> = inputs.iter().rev().copied().collect();
        let r = merge(family, &reversed, &unlimited).expect("reordered inputs merge");
        assert_eq!(r.body, m.body, "output depends on input order");
    }

    // The limit is inclusive.
    let at = merge(
        family,
        &inputs,
        &MergeOptions {
            max_tasks: Some(m.tasks),
        },
    );
    assert_eq!(at.as_ref().map(|x| &x.body), Ok(&m.body));
    if m.tasks > 0 {
        let over = merge(
            family,
            &inputs,
            &MergeOptions {
                max_tasks: Some(m.tasks - 1),
            },
        );
        assert_eq!(
            over,
            Err(MergeError::TooMany {
                count: m.tasks,
                max: m.tasks - 1
            })
        );
    }
});
