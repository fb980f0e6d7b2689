//! A vCenter's REST error, as a JSON-RPC client must see it.
//!
//! Sessions behind JSON-RPC clients are made through a REST family's session
//! service, so a refused log-in comes back as a `/api` or `/rest` error body. A
//! JSON-RPC client can only read vAPI errors, so the error is re-encoded, name and
//! messages kept (the notes' §5 table): `/api` `{"error_type":"X","messages":[..]}`
//! and `/rest` `{"type":"com.vmware.vapi.std.errors.x","value":{"messages":[..]}}`
//! both become `{"ERROR":{"com.vmware.vapi.std.errors.x":{..}}}`. A body that is
//! neither (an HTML error page) becomes the error its HTTP status stands for.

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use crate::protocol::json::write_json_str;
use crate::protocol::{ErrorKind, VapiError};

/// The JSON-RPC error value for a REST error answer from vCenter `vcenter`.
pub fn error_from_rest(status: StatusCode, body: &[u8], vcenter: &str) -> Bytes {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let named = parsed.as_ref().and_then(|v| {
        if let Some(t) = v.get("error_type").and_then(Value::as_str) {
            Some((t.to_ascii_lowercase(), v.get("messages")))
        } else {
            let name = v
                .get("type")?
                .as_str()?
                .strip_prefix("com.vmware.vapi.std.errors.")?;
            Some((
                name.to_owned(),
                v.get("value").and_then(|v| v.get("messages")),
            ))
        }
    });
    let Some((name, messages)) = named else {
        let kind = kind_of_status(status);
        return super::error_body(&VapiError::new(
            kind,
            "vcproxy.upstream.http_status",
            format!("vCenter {vcenter} answered HTTP {status}."),
        ));
    };
    let mut out = Vec::with_capacity(body.len() + 256);
    out.extend_from_slice(b"{\"ERROR\":{\"com.vmware.vapi.std.errors.");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":{\"messages\":[");
    for (i, m) in messages
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        message(&mut out, m);
    }
    out.extend_from_slice(b"],\"data\":{\"OPTIONAL\":null},\"error_type\":{\"OPTIONAL\":");
    write_json_str(&mut out, &name.to_ascii_uppercase());
    out.extend_from_slice(b"}}}}");
    Bytes::from(out)
}

fn kind_of_status(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        400 => ErrorKind::InvalidArgument,
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        500 => ErrorKind::Error,
        _ => ErrorKind::ServiceUnavailable,
    }
}

fn text<'a>(m: &'a Value, field: &str) -> &'a str {
    m.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// A REST message `{id, default_message, args, params?, localized?}` as a typed
/// `com.vmware.vapi.std.localizable_message`.
fn message(out: &mut Vec<u8>, m: &Value) {
    out.extend_from_slice(b"{\"STRUCTURE\":{\"com.vmware.vapi.std.localizable_message\":{\"id\":");
    write_json_str(out, text(m, "id"));
    out.extend_from_slice(b",\"default_message\":");
    write_json_str(out, text(m, "default_message"));
    out.extend_from_slice(b",\"args\":[");
    for (i, a) in m
        .get("args")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        match a {
            Value::String(s) => write_json_str(out, s),
            other => write_json_str(out, &other.to_string()),
        }
    }
    out.extend_from_slice(b"],\"params\":{\"OPTIONAL\":");
    // `/api` params are an object, `/rest` ones a key/value array.
    let params: Vec<(&str, &Value)> = match m.get("params") {
        Some(Value::Object(o)) => o.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|e| Some((e.get("key")?.as_str()?, e.get("value")?)))
            .collect(),
        _ => Vec::new(),
    };
    if m.get("params").is_some_and(|p| !p.is_null()) {
        out.push(b'[');
        for (i, (k, v)) in params.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"STRUCTURE\":{\"map-entry\":{\"key\":");
            write_json_str(out, k);
            out.extend_from_slice(
                b",\"value\":{\"STRUCTURE\":{\"com.vmware.vapi.std.localization_param\":{",
            );
            for (j, f) in ["s", "dt", "i", "d", "l", "format", "precision"]
                .iter()
                .enumerate()
            {
                if j > 0 {
                    out.push(b',');
                }
                write_json_str(out, f);
                out.extend_from_slice(b":{\"OPTIONAL\":");
                match v.get(*f) {
                    Some(x) if !x.is_null() => out.extend_from_slice(x.to_string().as_bytes()),
                    _ => out.extend_from_slice(b"null"),
                }
                out.push(b'}');
            }
            out.extend_from_slice(b"}}}}}}");
        }
        out.push(b']');
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b"},\"localized\":{\"OPTIONAL\":");
    match m.get("localized").and_then(Value::as_str) {
        Some(l) => write_json_str(out, l),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_rest_shapes_keep_their_name_and_messages() {
        let api = br#"{"error_type":"UNAUTHENTICATED","messages":[{"args":["a"],"default_message":"Authentication required.","id":"x.y","params":{"vm":{"s":"vm-42"}}}]}"#;
        let rest = br#"{"type":"com.vmware.vapi.std.errors.unauthenticated","value":{"messages":[{"args":["a"],"default_message":"Authentication required.","id":"x.y","params":[{"key":"vm","value":{"s":"vm-42"}}]}]}}"#;
        let a = error_from_rest(StatusCode::UNAUTHORIZED, api, "vc1");
        let r = error_from_rest(StatusCode::UNAUTHORIZED, rest, "vc1");
        assert_eq!(a, r);
        let v: Value = serde_json::from_slice(&a).unwrap();
        let e = &v["ERROR"]["com.vmware.vapi.std.errors.unauthenticated"];
        assert_eq!(e["error_type"]["OPTIONAL"], "UNAUTHENTICATED");
        let m = &e["messages"][0]["STRUCTURE"]["com.vmware.vapi.std.localizable_message"];
        assert_eq!(m["default_message"], "Authentication required.");
        assert_eq!(m["args"][0], "a");
        let p = &m["params"]["OPTIONAL"][0]["STRUCTURE"]["map-entry"];
        assert_eq!(p["key"], "vm");
        let lp = &p["value"]["STRUCTURE"]["com.vmware.vapi.std.localization_param"];
        assert_eq!(lp["s"]["OPTIONAL"], "vm-42");
        assert_eq!(lp["i"]["OPTIONAL"], Value::Null);
    }

    #[test]
    fn a_page_that_is_not_a_vapi_error_becomes_its_status_error() {
        let v: Value =
            serde_json::from_slice(&error_from_rest(StatusCode::BAD_GATEWAY, b"<html>", "vc2"))
                .unwrap();
        let e = &v["ERROR"]["com.vmware.vapi.std.errors.service_unavailable"];
        let m = &e["messages"][0]["STRUCTURE"]["com.vmware.vapi.std.localizable_message"];
        assert!(m["default_message"].as_str().unwrap().contains("vc2"));
    }
}
