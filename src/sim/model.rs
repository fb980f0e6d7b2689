//! The simulator's typed model of `com.vmware.cis.tasks` Info, and its rendering in
//! each URL family.
//!
//! The two families differ in more than the outer wrapping: `/rest` renders every
//! map, including maps nested inside `description.params` and inside the opaque
//! `result`, as an array of `{"key":k,"value":v}` entries, while `/api` renders
//! JSON objects. That transformation needs the schema (a JSON object may be a
//! structure or a map), so tasks are kept as typed values and each family is
//! rendered from them, never converted from the other family's bytes.
//!
//! Rendering is compact JSON with structure fields in alphabetical order, the order
//! of the vAPI samples in `shared/vsphere/API-NOTES.md` (`args`, `default_message`,
//! `id`); optional fields that are unset are left out.

use crate::protocol::json::write_json_str;
use crate::protocol::Family;

/// Milliseconds since the Unix epoch (UTC).
pub(crate) type Millis = i64;

/// A task's status (`com.vmware.cis.task.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Pending,
    Running,
    Blocked,
    Succeeded,
    Failed,
}

impl Status {
    pub(crate) const ALL: [Status; 5] = [
        Status::Pending,
        Status::Running,
        Status::Blocked,
        Status::Succeeded,
        Status::Failed,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Blocked => "BLOCKED",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A `com.vmware.vapi.std.LocalizationParam`: exactly one of its value fields set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    /// `{"s": "..."}`
    S(String),
    /// `{"i": 3}`
    I(i64),
    /// `{"dt": "2025-01-15T09:00:00.000Z"}`
    Dt(Millis),
}

/// A `com.vmware.vapi.std.LocalizableMessage`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) default_message: String,
    pub(crate) args: Vec<String>,
    /// A map (sorted by key); left out when empty.
    pub(crate) params: Vec<(String, Param)>,
}

/// A `{type, id}` dynamic id (`target`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) kind: &'static str,
    pub(crate) id: String,
}

/// A typed value inside the opaque `result`: the schema tells structures (rendered
/// as objects in both families) from maps (objects in `/api`, key/value arrays in
/// `/rest`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Data>),
    /// Fields in alphabetical order.
    Struct(Vec<(&'static str, Data)>),
    /// Entries sorted by key.
    Map(Vec<(String, Data)>),
}

/// `{total, completed, message}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Progress {
    pub(crate) total: i64,
    pub(crate) completed: i64,
    pub(crate) message: Message,
}

/// A task's Info as of one instant. Borrowed parts come from the task's plan;
/// fields that change with time are owned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Info<'a> {
    pub(crate) description: &'a Message,
    pub(crate) service: &'a str,
    pub(crate) operation: &'a str,
    pub(crate) parent: Option<&'a str>,
    pub(crate) target: Option<&'a Target>,
    pub(crate) status: Status,
    pub(crate) cancelable: bool,
    /// A `com.vmware.vapi.std.errors.error` with this message.
    pub(crate) error: Option<&'a Message>,
    pub(crate) start_time: Option<Millis>,
    pub(crate) end_time: Option<Millis>,
    pub(crate) user: Option<&'a str>,
    pub(crate) progress: Option<Progress>,
    pub(crate) result: Option<&'a Data>,
}

/// Writes JSON for one family into a buffer.
pub(crate) struct Writer {
    pub(crate) out: Vec<u8>,
    pub(crate) family: Family,
}

impl Writer {
    pub(crate) fn new(family: Family) -> Self {
        Writer {
            out: Vec::with_capacity(1024),
            family,
        }
    }

    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn str(&mut self, s: &str) {
        write_json_str(&mut self.out, s);
    }

    fn int(&mut self, i: i64) {
        self.raw(&i.to_string());
    }

    fn time(&mut self, t: Millis) {
        self.out.push(b'"');
        self.raw(&iso8601(t));
        self.out.push(b'"');
    }

    /// Writes `"name":` preceded by a comma unless it is the first field.
    fn field(&mut self, first: &mut bool, name: &str) {
        if !std::mem::take(first) {
            self.out.push(b',');
        }
        self.str(name);
        self.out.push(b':');
    }

    /// A map in the family's encoding, entries written by `value`.
    fn map<K: AsRef<str>, V>(&mut self, entries: &[(K, V)], mut value: impl FnMut(&mut Self, &V)) {
        match self.family {
            Family::Api | Family::JsonRpc => {
                self.out.push(b'{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.str(k.as_ref());
                    self.out.push(b':');
                    value(self, v);
                }
                self.out.push(b'}');
            }
            Family::Rest => {
                self.out.push(b'[');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.raw("{\"key\":");
                    self.str(k.as_ref());
                    self.raw(",\"value\":");
                    value(self, v);
                    self.out.push(b'}');
                }
                self.out.push(b']');
            }
        }
    }

    pub(crate) fn message(&mut self, m: &Message) {
        self.raw("{\"args\":[");
        for (i, a) in m.args.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.str(a);
        }
        self.raw("],\"default_message\":");
        self.str(&m.default_message);
        self.raw(",\"id\":");
        self.str(&m.id);
        if !m.params.is_empty() {
            self.raw(",\"params\":");
            self.map(&m.params, |w, p| match p {
                Param::Dt(t) => {
                    w.raw("{\"dt\":");
                    w.time(*t);
                    w.out.push(b'}');
                }
                Param::I(i) => {
                    w.raw("{\"i\":");
                    w.int(*i);
                    w.out.push(b'}');
                }
                Param::S(s) => {
                    w.raw("{\"s\":");
                    w.str(s);
                    w.out.push(b'}');
                }
            });
        }
        self.out.push(b'}');
    }

    /// A std error of kind `error` carrying one message, in the family's error shape.
    fn std_error(&mut self, m: &Message) {
        match self.family {
            Family::Rest => {
                self.raw(
                    "{\"type\":\"com.vmware.vapi.std.errors.error\",\"value\":{\"messages\":[",
                );
                self.message(m);
                self.raw("]}}");
            }
            Family::Api | Family::JsonRpc => {
                self.raw("{\"error_type\":\"ERROR\",\"messages\":[");
                self.message(m);
                self.raw("]}");
            }
        }
    }

    pub(crate) fn data(&mut self, d: &Data) {
        match d {
            Data::Str(s) => self.str(s),
            Data::Int(i) => self.int(*i),
            Data::Bool(b) => self.raw(if *b { "true" } else { "false" }),
            Data::List(items) => {
                self.out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.data(item);
                }
                self.out.push(b']');
            }
            Data::Struct(fields) => {
                self.out.push(b'{');
                let mut first = true;
                for (name, value) in fields {
                    self.field(&mut first, name);
                    self.data(value);
                }
                self.out.push(b'}');
            }
            Data::Map(entries) => self.map(entries, |w, v| w.data(v)),
        }
    }

    /// One task Info; `result` is left out when `exclude_result`.
    pub(crate) fn info(&mut self, info: &Info<'_>, exclude_result: bool) {
        let mut first = true;
        self.out.push(b'{');
        self.field(&mut first, "cancelable");
        self.raw(if info.cancelable { "true" } else { "false" });
        self.field(&mut first, "description");
        self.message(info.description);
        if let Some(t) = info.end_time {
            self.field(&mut first, "end_time");
            self.time(t);
        }
        if let Some(e) = info.error {
            self.field(&mut first, "error");
            self.std_error(e);
        }
        self.field(&mut first, "operation");
        self.str(info.operation);
        if let Some(p) = info.parent {
            self.field(&mut first, "parent");
            self.str(p);
        }
        if let Some(p) = &info.progress {
            self.field(&mut first, "progress");
            self.raw("{\"completed\":");
            self.int(p.completed);
            self.raw(",\"message\":");
            self.message(&p.message);
            self.raw(",\"total\":");
            self.int(p.total);
            self.out.push(b'}');
        }
        if let (Some(r), false) = (info.result, exclude_result) {
            self.field(&mut first, "result");
            self.data(r);
        }
        self.field(&mut first, "service");
        self.str(info.service);
        if let Some(t) = info.start_time {
            self.field(&mut first, "start_time");
            self.time(t);
        }
        self.field(&mut first, "status");
        self.str(info.status.as_str());
        if let Some(t) = info.target {
            self.field(&mut first, "target");
            self.raw("{\"id\":");
            self.str(&t.id);
            self.raw(",\"type\":");
            self.str(t.kind);
            self.out.push(b'}');
        }
        if let Some(u) = info.user {
            self.field(&mut first, "user");
            self.str(u);
        }
        self.out.push(b'}');
    }

    /// A List Tasks answer: `{"value":[{"key":id,"value":Info},...]}` in `/rest`,
    /// `{id:Info,...}` in `/api`.
    pub(crate) fn task_map<'a>(
        &mut self,
        tasks: impl IntoIterator<Item = (&'a str, Info<'a>)>,
        exclude_result: bool,
    ) {
        match self.family {
            Family::Rest => {
                self.raw("{\"value\":[");
                for (i, (id, info)) in tasks.into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.raw("{\"key\":");
                    self.str(id);
                    self.raw(",\"value\":");
                    self.info(&info, exclude_result);
                    self.out.push(b'}');
                }
                self.raw("]}");
            }
            Family::Api | Family::JsonRpc => {
                self.out.push(b'{');
                for (i, (id, info)) in tasks.into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.str(id);
                    self.out.push(b':');
                    self.info(&info, exclude_result);
                }
                self.out.push(b'}');
            }
        }
    }

    /// A single value, wrapped as `{"value":...}` in `/rest` and bare in `/api`.
    pub(crate) fn wrapped(&mut self, inner: impl FnOnce(&mut Self)) {
        match self.family {
            Family::Rest => {
                self.raw("{\"value\":");
                inner(self);
                self.out.push(b'}');
            }
            Family::Api | Family::JsonRpc => inner(self),
        }
    }

    /// A JSON string value (used for session ids).
    pub(crate) fn string(&mut self, s: &str) {
        self.str(s);
    }

    /// A structure of string and time fields, in the order given (alphabetical).
    pub(crate) fn flat_struct(&mut self, fields: &[(&str, FlatValue<'_>)]) {
        self.out.push(b'{');
        let mut first = true;
        for (name, v) in fields {
            self.field(&mut first, name);
            match v {
                FlatValue::Str(s) => self.str(s),
                FlatValue::Time(t) => self.time(*t),
            }
        }
        self.out.push(b'}');
    }

    pub(crate) fn finish(self) -> bytes::Bytes {
        bytes::Bytes::from(self.out)
    }
}

/// A field value for [`Writer::flat_struct`].
pub(crate) enum FlatValue<'a> {
    Str(&'a str),
    Time(Millis),
}

/// `2015-01-01T22:13:05.651Z`: ISO-8601, UTC, milliseconds, as vCenter writes times.
pub(crate) fn iso8601(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_the_documented_example() {
        // 2015-01-01T22:13:05.651Z from the notes.
        assert_eq!(iso8601(1_420_150_385_651), "2015-01-01T22:13:05.651Z");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    fn msg_with_params() -> Message {
        Message {
            id: "a.b".into(),
            default_message: "Hi".into(),
            args: vec!["x".into()],
            params: vec![
                ("n".into(), Param::I(3)),
                ("s".into(), Param::S("v".into())),
            ],
        }
    }

    #[test]
    fn messages_render_params_per_family() {
        let m = msg_with_params();
        let mut w = Writer::new(Family::Api);
        w.message(&m);
        assert_eq!(
            w.finish(),
            r#"{"args":["x"],"default_message":"Hi","id":"a.b","params":{"n":{"i":3},"s":{"s":"v"}}}"#
        );
        let mut w = Writer::new(Family::Rest);
        w.message(&m);
        assert_eq!(
            w.finish(),
            r#"{"args":["x"],"default_message":"Hi","id":"a.b","params":[{"key":"n","value":{"i":3}},{"key":"s","value":{"s":"v"}}]}"#
        );
    }

    #[test]
    fn nested_maps_are_converted_in_rest_only() {
        let d = Data::Struct(vec![(
            "hosts",
            Data::Map(vec![(
                "host-1".into(),
                Data::Struct(vec![
                    ("notes", Data::Map(vec![("k".into(), Data::Int(1))])),
                    ("ok", Data::Bool(true)),
                ]),
            )]),
        )]);
        let mut w = Writer::new(Family::Api);
        w.data(&d);
        assert_eq!(
            w.finish(),
            r#"{"hosts":{"host-1":{"notes":{"k":1},"ok":true}}}"#
        );
        let mut w = Writer::new(Family::Rest);
        w.data(&d);
        assert_eq!(
            w.finish(),
            r#"{"hosts":[{"key":"host-1","value":{"notes":[{"key":"k","value":1}],"ok":true}}]}"#
        );
    }
}
