//! Merging vCenters' List Tasks answers.
//!
//! Input layout: the first byte picks the family (even: `/rest`, odd: `/api`); the rest
//! is split on 0xFF (never part of UTF-8 text) into 1 to 4 upstream bodies.
//!
//! Invariants on every successful merge (`max_tasks: None`):
//! * the output is valid JSON of the family's shape, holding exactly `tasks` tasks,
//!   with unique ids in ascending order (checked through `serde_json::Value` when the
//!   output is within `Value`'s limits: nesting depth 128, finite numbers);
//! * idempotence: merging the output alone gives byte-identical output, the same task
//!   count and no duplicates;
//! * a duplicate keeps the copy of the earlier input;
//! * without duplicates, the output does not depend on the order of the inputs;
//! * `max_tasks: Some(tasks)` succeeds and `Some(tasks - 1)` is `TooMany`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vcproxy::merge::{merge, MergeError, MergeOptions, UpstreamBody};
use vcproxy::Family;

const NAMES: [&str; 4] = ["vc-a", "vc-b", "vc-c", "vc-d"];

fn check_shape(family: Family, body: &[u8], tasks: usize) {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        panic!("merged output is not JSON ({e}): {:?}", String::from_utf8_lossy(body));
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            // Valid JSON (checked above) that serde_json::Value cannot hold: info objects
            // are copied raw, and may nest deeper than 128 or hold numbers like 1e400.
            let msg = e.to_string();
            assert!(
                msg.contains("recursion limit") || msg.contains("number out of range"),
                "merged output rejected by serde_json::Value: {msg}"
            );
            return;
        }
    };
    let ids: Vec<&str> = match family {
        Family::Api => {
            let map = v.as_object().expect("/api output is an object");
            map.keys().map(String::as_str).collect()
        }
        Family::Rest => {
            let map = v.as_object().expect("/rest output is an object");
            assert_eq!(map.len(), 1, "/rest output has only \"value\"");
            let list = map["value"].as_array().expect("/rest value is a list");
            let ids: Vec<&str> = list
                .iter()
                .map(|e| {
                    let e = e.as_object().expect("/rest entry is an object");
                    assert_eq!(e.len(), 2, "/rest entry has key and value only");
                    assert!(e["value"].is_object(), "/rest entry value is an object");
                    e["key"].as_str().expect("/rest entry key is a string")
                })
                .collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "/rest ids not strictly ascending");
            ids
        }
    };
    // For /api a serde_json Map folds duplicate keys, so this also checks uniqueness.
    assert_eq!(ids.len(), tasks, "task count does not match the output");
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let family = if first & 1 == 0 { Family::Rest } else { Family::Api };
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
        assert!(d.kept <= d.dropped, "duplicate {d:?} kept a later input's copy");
    }

    // Idempotence.
    let again = merge(family, &[UpstreamBody { vcenter: "merged", body: &m.body }], &unlimited)
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
    let at = merge(family, &inputs, &MergeOptions { max_tasks: Some(m.tasks) });
    assert_eq!(at.as_ref().map(|x| &x.body), Ok(&m.body));
    if m.tasks > 0 {
        let over = merge(family, &inputs, &MergeOptions { max_tasks: Some(m.tasks - 1) });
        assert_eq!(over, Err(MergeError::TooMany { count: m.tasks, max: m.tasks - 1 }));
    }
});
