//! Parsing a JSON List Tasks body with serde seeds: strings borrowed where they have no
//! escapes, duplicate members refused, members outside the model kept as written.

use super::{check_body_size, ExtraMember, Limits, Parent, Target, TaskQuery};
use crate::protocol::error::VapiError;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Parses `{"filter_spec": {...}, "result_spec": {...}}`. Members outside the model are
/// kept in `extra_members`; a member given twice, a value of the wrong type, a target
/// without an id, or text that is not JSON is an error naming the member.
pub fn parse_json(body: &[u8], limits: &Limits) -> Result<TaskQuery, VapiError> {
    check_body_size(body, limits)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| VapiError::invalid_argument("The request body is not valid UTF-8 text."))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let mut out = TaskQuery::default();
    let result = ObjectSeed {
        parent: Parent::Top,
        out: &mut out,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    result.map_err(|e| VapiError::invalid_argument(format!("Invalid JSON request body: {e}.")))?;
    out.normalize();
    Ok(out)
}

/// Borrows a string from the input where it has no escapes.
struct CowStr<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Remembers which members of one object were seen, to reject duplicates.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn check<E: de::Error>(&mut self, path: &str) -> Result<(), E> {
        if self.0.iter().any(|p| p == path) {
            return Err(E::custom(format_args!("member {path} is given twice")));
        }
        self.0.push(path.to_owned());
        Ok(())
    }
}

/// Removes white space outside strings, so an extra member's value is forwarded and
/// keyed the same however the client laid it out.
fn minify(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_str = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Reads one of the three objects of a List Tasks body (the body itself,
/// `filter_spec`, `result_spec`) into `out`; members outside the model are kept,
/// with the object they stood in.
struct ObjectSeed<'a> {
    parent: Parent,
    out: &'a mut TaskQuery,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.parent {
            // The body must be an object; `filter_spec` and `result_spec` may be null.
            Parent::Top => d.deserialize_map(self),
            Parent::FilterSpec | Parent::ResultSpec => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self.parent {
            Parent::Top => "a JSON object with filter_spec and result_spec",
            Parent::FilterSpec => "an object or null for filter_spec",
            Parent::ResultSpec => "an object or null for result_spec",
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Seen::default();
        while let Some(CowStr(name)) = map.next_key()? {
            let path = match self.parent {
                Parent::Top => name.to_string(),
                Parent::FilterSpec => format!("filter_spec.{name}"),
                Parent::ResultSpec => format!("result_spec.{name}"),
            };
            seen.check(&path)?;
            let out = &mut *self.out;
            match (self.parent, &*name) {
                (Parent::Top, "filter_spec") => map.next_value_seed(ObjectSeed {
                    parent: Parent::FilterSpec,
                    out,
                })?,
                (Parent::Top, "result_spec") => map.next_value_seed(ObjectSeed {
                    parent: Parent::ResultSpec,
                    out,
                })?,
                (Parent::FilterSpec, "targets") => {
                    out.filter.targets = map.next_value_seed(TargetListSeed)?
                }
                (Parent::FilterSpec, field) if out.filter.list_mut(field).is_some() => {
                    let values = map.next_value_seed(StringListSeed { path: &path })?;
                    if let Some(list) = out.filter.list_mut(field) {
                        *list = values;
                    }
                }
                (Parent::ResultSpec, "return_all") => {
                    out.result.return_all = map.next_value_seed(BoolSeed { path: &path })?
                }
                (Parent::ResultSpec, "exclude_result") => {
                    out.result.exclude_result = map.next_value_seed(BoolSeed { path: &path })?
                }
                _ => {
                    let raw: &RawValue = map.next_value()?;
                    out.extra_members.push(ExtraMember {
                        parent: self.parent,
                        name: name.into_owned(),
                        raw: minify(raw.get()),
                    });
                }
            }
        }
        Ok(())
    }
}

struct BoolSeed<'p> {
    path: &'p str,
}

impl<'de> DeserializeSeed<'de> for BoolSeed<'_> {
    type Value = Option<bool>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<bool>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BoolSeed<'_> {
    type Value = Option<bool>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "true, false or null for {}", self.path)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<bool>, E> {
        Ok(Some(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<bool>, E> {
        Ok(None)
    }
}

struct StringListSeed<'p> {
    path: &'p str,
}

impl<'de> DeserializeSeed<'de> for StringListSeed<'_> {
    type Value = Vec<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StringListSeed<'_> {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list of strings or null for {}", self.path)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(StrSeed {
            path: self.path,
            index: Some(out.len()),
        })? {
            out.push(v);
        }
        Ok(out)
    }
}

struct StrSeed<'p> {
    path: &'p str,
    /// The position in a list, when the string is a list element.
    index: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for StrSeed<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrSeed<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "a string for {}[{i}]", self.path),
            None => write!(f, "a string for {}", self.path),
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

struct TargetListSeed;

impl<'de> DeserializeSeed<'de> for TargetListSeed {
    type Value = Vec<Target>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Target>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TargetListSeed {
    type Value = Vec<Target>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of {type, id} objects or null for filter_spec.targets")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<Target>, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Target>, A::Error> {
        let mut out = Vec::new();
        while let Some(t) = seq.next_element_seed(TargetSeed { index: out.len() })? {
            out.push(t);
        }
        Ok(out)
    }
}

struct TargetSeed {
    index: usize,
}

impl<'de> DeserializeSeed<'de> for TargetSeed {
    type Value = Target;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Target, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TargetSeed {
    type Value = Target;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a {{type, id}} object for filter_spec.targets[{}]",
            self.index
        )
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Target, A::Error> {
        let i = self.index;
        let mut ty: Option<String> = None;
        let mut id: Option<String> = None;
        while let Some(CowStr(name)) = map.next_key()? {
            let path = format!("filter_spec.targets[{i}].{name}");
            let slot = match &*name {
                "type" => &mut ty,
                "id" => &mut id,
                _ => {
                    // A target is {type, id} in every vCenter release; anything else is
                    // a client bug, and a set of targets cannot carry it canonically.
                    return Err(de::Error::custom(format_args!(
                        "unknown member {path}: a target has only type and id"
                    )));
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom(format_args!(
                    "member {path} is given twice"
                )));
            }
            *slot = Some(map.next_value_seed(StrSeed {
                path: &path,
                index: None,
            })?);
        }
        match (ty, id) {
            (Some(target_type), Some(id)) => Ok(Target { target_type, id }),
            (Some(_), None) => Err(de::Error::custom(format_args!(
                "filter_spec.targets[{i}].id is missing: a target needs both a type and an id"
            ))),
            (None, _) => Err(de::Error::custom(format_args!(
                "filter_spec.targets[{i}].type is missing: a target needs both a type and an id"
            ))),
        }
    }
}
