//! Parsing a `/rest` query string: repeated and 1-based indexed keys, strict
//! percent-decoding, booleans.

use super::{Limits, ResultSpec, Target, TaskQuery, STRING_FIELDS};
use crate::protocol::error::VapiError;
use std::borrow::Cow;

/// Collects one list field's values as they arrive: repeated keys and indexed keys.
#[derive(Default)]
struct ListAcc<'q> {
    repeated: Vec<Cow<'q, str>>,
    indexed: Vec<(u32, Cow<'q, str>)>,
}

/// One indexed target as its parameters arrive.
struct TargetParts<'q> {
    index: u32,
    target_type: Option<Cow<'q, str>>,
    id: Option<Cow<'q, str>>,
}

#[derive(Default)]
struct TargetAcc<'q> {
    items: Vec<TargetParts<'q>>,
}

/// Parses a `/rest` query string. With `api` set, only `action=list` and extras are
/// expected (the caller rejects model parameters).
pub fn parse_query(query: &str, limits: &Limits, api: bool) -> Result<TaskQuery, VapiError> {
    if query.len() > limits.max_query_bytes {
        return Err(VapiError::invalid_argument(format!(
            "The query string is {} bytes; the limit is {} bytes.",
            query.len(),
            limits.max_query_bytes
        )));
    }
    let mut lists: [ListAcc; 5] = Default::default();
    let mut targets = TargetAcc::default();
    let mut return_all: Option<bool> = None;
    let mut exclude_result: Option<bool> = None;
    let mut out = TaskQuery::default();

    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        // The vAPI runtime skips parameters with an empty value; so do we.
        if raw_value.is_empty() {
            continue;
        }
        let key = percent_decode(raw_key, raw_key)?;
        let value = percent_decode(raw_value, &key)?;
        if value.is_empty() {
            continue;
        }

        if key == "action" {
            if !api {
                // In the /api family `action` selects the operation; forwarded from a
                // /rest query it would change what an /api request asks.
                return Err(VapiError::invalid_argument(
                    "Query parameter action: GET /rest/cis/tasks does not take it \
                     (in the /api family it selects the operation).",
                ));
            }
            if value != "list" {
                return Err(VapiError::invalid_argument(format!(
                    "Query parameter action: expected \"list\", got \"{}\".",
                    quote(&value)
                )));
            }
            continue;
        }

        if let Some(rest) = key.strip_prefix("filter_spec.") {
            let (field, tail) = match rest.split_once('.') {
                Some((f, t)) => (f, Some(t)),
                None => (rest, None),
            };
            if let Some(slot) = STRING_FIELDS.iter().position(|f| *f == field) {
                let acc = &mut lists[slot];
                match tail {
                    None => acc.repeated.push(value),
                    Some(idx) => {
                        let i = parse_index(idx, &key)?;
                        set_indexed(&mut acc.indexed, i, value, &key)?;
                    }
                }
                continue;
            }
            if field == "targets" {
                add_target_param(&mut targets, tail, value, &key)?;
                continue;
            }
        } else if let Some(field) = key.strip_prefix("result_spec.") {
            let slot = match field {
                "return_all" => Some(&mut return_all),
                "exclude_result" => Some(&mut exclude_result),
                _ => None,
            };
            if let Some(slot) = slot {
                let b = parse_bool(&value, &key)?;
                match *slot {
                    Some(prev) if prev != b => {
                        return Err(VapiError::invalid_argument(format!(
                            "Query parameter {key} is given twice with different values."
                        )))
                    }
                    _ => *slot = Some(b),
                }
                continue;
            }
            if field.starts_with("return_all.") || field.starts_with("exclude_result.") {
                return Err(VapiError::invalid_argument(format!(
                    "Query parameter {}: a boolean takes no index.",
                    quote(&key)
                )));
            }
        }
        out.extra_params
            .push((key.into_owned(), value.into_owned()));
    }

    for (slot, acc) in lists.into_iter().enumerate() {
        let field = STRING_FIELDS[slot];
        let values = finish_list(acc, field)?;
        if let Some(list) = out.filter.list_mut(field) {
            *list = values;
        }
    }
    out.filter.targets = finish_targets(targets)?;
    out.result = ResultSpec {
        return_all,
        exclude_result,
    };
    out.normalize();
    Ok(out)
}

/// A 1-based index as the vAPI decoder takes it: digits only, no sign, no leading zero.
fn parse_index(s: &str, key: &str) -> Result<u32, VapiError> {
    let valid = !s.is_empty()
        && s.len() <= 9
        && s.bytes().all(|b| b.is_ascii_digit())
        && !s.starts_with('0');
    if !valid {
        return Err(VapiError::invalid_argument(format!(
            "Query parameter {}: the list index must be a whole number from 1.",
            quote(key)
        )));
    }
    s.parse::<u32>().map_err(|_| {
        VapiError::invalid_argument(format!("Query parameter {}: bad list index.", quote(key)))
    })
}

fn set_indexed<'q>(
    items: &mut Vec<(u32, Cow<'q, str>)>,
    index: u32,
    value: Cow<'q, str>,
    key: &str,
) -> Result<(), VapiError> {
    if let Some((_, prev)) = items.iter().find(|(i, _)| *i == index) {
        if *prev != value {
            return Err(VapiError::invalid_argument(format!(
                "Query parameter {} is given twice with different values.",
                quote(key)
            )));
        }
        return Ok(());
    }
    items.push((index, value));
    Ok(())
}

/// Checks that indexes run 1..=n without a gap, as the vAPI decoder does
/// ("Element with index 2 is expected"), and returns the values.
fn check_indexes<T>(items: &mut [(u32, T)], param: &str) -> Result<(), VapiError> {
    items.sort_unstable_by_key(|(i, _)| *i);
    for (expected, (i, _)) in (1u32..).zip(items.iter()) {
        if *i != expected {
            return Err(VapiError::invalid_argument(format!(
                "Query parameter {param}: element with index {expected} is expected \
                 (indexes start at 1 and have no gaps)."
            )));
        }
    }
    Ok(())
}

fn finish_list(mut acc: ListAcc<'_>, field: &str) -> Result<Vec<String>, VapiError> {
    if !acc.repeated.is_empty() && !acc.indexed.is_empty() {
        return Err(VapiError::invalid_argument(format!(
            "Query parameter filter_spec.{field}: mixes repeated keys and indexed keys; \
             use one form."
        )));
    }
    if !acc.indexed.is_empty() {
        check_indexes(&mut acc.indexed, &format!("filter_spec.{field}"))?;
        return Ok(acc
            .indexed
            .into_iter()
            .map(|(_, v)| v.into_owned())
            .collect());
    }
    Ok(acc.repeated.into_iter().map(Cow::into_owned).collect())
}

fn add_target_param<'q>(
    targets: &mut TargetAcc<'q>,
    tail: Option<&str>,
    value: Cow<'q, str>,
    key: &str,
) -> Result<(), VapiError> {
    let bad = || {
        VapiError::invalid_argument(format!(
            "Query parameter {}: targets are written filter_spec.targets.N.type and \
             filter_spec.targets.N.id, N from 1.",
            quote(key)
        ))
    };
    let (idx, member) = tail.and_then(|t| t.split_once('.')).ok_or_else(bad)?;
    let i = parse_index(idx, key)?;
    let pos = match targets.items.iter().position(|t| t.index == i) {
        Some(p) => p,
        None => {
            targets.items.push(TargetParts {
                index: i,
                target_type: None,
                id: None,
            });
            targets.items.len() - 1
        }
    };
    let item = &mut targets.items[pos];
    let slot = match member {
        "type" => &mut item.target_type,
        "id" => &mut item.id,
        _ => return Err(bad()),
    };
    match slot {
        Some(prev) if *prev != value => Err(VapiError::invalid_argument(format!(
            "Query parameter {} is given twice with different values.",
            quote(key)
        ))),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

fn finish_targets(mut acc: TargetAcc<'_>) -> Result<Vec<Target>, VapiError> {
    acc.items.sort_unstable_by_key(|t| t.index);
    let mut out = Vec::with_capacity(acc.items.len());
    for (expected, t) in (1u32..).zip(acc.items) {
        let (i, ty, id) = (t.index, t.target_type, t.id);
        if i != expected {
            return Err(VapiError::invalid_argument(format!(
                "Query parameter filter_spec.targets: element with index {expected} is \
                 expected (indexes start at 1 and have no gaps)."
            )));
        }
        match (ty, id) {
            (Some(ty), Some(id)) => out.push(Target {
                target_type: ty.into_owned(),
                id: id.into_owned(),
            }),
            (Some(_), None) => {
                return Err(VapiError::invalid_argument(format!(
                    "Query parameter filter_spec.targets.{i}.id is missing: a target needs \
                     both a type and an id."
                )))
            }
            (None, _) => {
                return Err(VapiError::invalid_argument(format!(
                    "Query parameter filter_spec.targets.{i}.type is missing: a target needs \
                     both a type and an id."
                )))
            }
        }
    }
    Ok(out)
}

pub(crate) fn parse_bool(value: &str, key: &str) -> Result<bool, VapiError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(VapiError::invalid_argument(format!(
            "Query parameter {}: expected true or false, got \"{}\".",
            quote(key),
            quote(value)
        )))
    }
}

/// Decodes `+` and `%XX`, strictly: a bad escape or bytes that are not UTF-8 are an
/// error naming `param` (form_urlencoded would replace them silently, and a silently
/// changed filter is a wrong answer).
pub(crate) fn percent_decode<'q>(raw: &'q str, param: &str) -> Result<Cow<'q, str>, VapiError> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    bytes.get(i + 1).and_then(|&b| hex(b)),
                    bytes.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        return Err(VapiError::invalid_argument(format!(
                            "Query parameter {}: invalid percent-escape.",
                            quote(param)
                        )))
                    }
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| {
        VapiError::invalid_argument(format!(
            "Query parameter {}: percent-escapes do not decode to UTF-8 text.",
            quote(param)
        ))
    })
}

/// Shortens client-supplied text quoted in an error message.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
