//! List Tasks questions and answers both the proxy tests and the load benchmark use:
//! the ten spellings of one question, the every-service filter, the keys of a
//! `/rest` answer.

use bytes::Bytes;
use serde_json::Value;
use vcproxy::sim;

/// One spelling of a `/rest` List Tasks question: a query string and/or a JSON body.
#[derive(Debug, Clone)]
pub struct RestQuery {
    pub query: Option<String>,
    pub body: Option<Bytes>,
}

impl RestQuery {
    /// The question as a query string.
    pub fn query(q: String) -> RestQuery {
        RestQuery {
            query: Some(q),
            body: None,
        }
    }

    /// The question as a JSON body (the Python SDK's way on a GET).
    pub fn body(b: String) -> RestQuery {
        RestQuery {
            query: None,
            body: Some(Bytes::from(b)),
        }
    }
}

/// Ten spellings of one `/rest` question, "tasks of service `svc` that are RUNNING or
/// FAILED": repeated and indexed keys in any order, escapes, duplicates, defaults
/// spelled out, and two JSON bodies. The proxy must give them one cache entry.
pub fn ten_encodings(svc: &str) -> Vec<RestQuery> {
    vec![
        RestQuery::query(format!("filter_spec.services={svc}&filter_spec.status=RUNNING&filter_spec.status=FAILED")),
        RestQuery::query(format!("filter_spec.status=FAILED&filter_spec.status=RUNNING&filter_spec.services={svc}")),
        RestQuery::query(format!("filter_spec.services.1={svc}&filter_spec.status.1=RUNNING&filter_spec.status.2=FAILED")),
        RestQuery::query(format!("filter_spec.status.2=RUNNING&filter_spec.status.1=FAILED&filter_spec.services.1={svc}")),
        RestQuery::query(format!(
            "filter_spec.services={}&filter_spec.status=RUNNING&filter_spec.status=FAILED",
            svc.replace('.', "%2E")
        )),
        RestQuery::query(format!(
            "filter_spec.services={svc}&filter_spec.services={svc}&filter_spec.status=RUNNING&filter_spec.status=FAILED&filter_spec.status=RUNNING"
        )),
        RestQuery::query(format!(
            "filter_spec.services={svc}&filter_spec.status=RUNNING&filter_spec.status=FAILED&result_spec.return_all=false&filter_spec.users="
        )),
        RestQuery::query(format!(
            "filter_spec.services={svc}&filter_spec.status=RUNNING&filter_spec.status=FAILED&result_spec.exclude_result=FALSE"
        )),
        RestQuery::body(format!(r#"{{"filter_spec":{{"services":["{svc}"],"status":["RUNNING","FAILED"]}}}}"#)),
        RestQuery::body(format!(
            r#"{{ "result_spec": {{"return_all": false}}, "filter_spec": {{"status": ["FAILED", "RUNNING", "FAILED"], "tasks": [], "services": ["{svc}"]}} }}"#
        )),
    ]
}

/// A `/rest` List Tasks query for every service the simulators know: every task.
pub fn every_service_query() -> String {
    sim::service_ids()
        .iter()
        .map(|s| format!("filter_spec.services={s}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Every key of a `/rest` list answer `{"value":[{"key":..,"value":..}]}`, in order.
pub fn rest_keys(v: &Value) -> Vec<String> {
    v["value"]
        .as_array()
        .unwrap_or_else(|| panic!("not a /rest list: {v}"))
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect()
}
