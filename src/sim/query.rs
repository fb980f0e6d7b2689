//! List Tasks semantics, as vCenter applies them to a parsed filter.
//!
//! `crate::protocol::filter` turns every encoding of the question into a [`TaskQuery`]; what
//! the answer is belongs here, because only a vCenter (and so the simulator)
//! knows it: parameters outside the model are rejected like vAPI's strict
//! decoder does; at least one of `tasks` and `services` is required; within a
//! field any value matches and across fields all must; only tasks the caller may
//! see count; more than 1000 of them is an error rather than a silently cut list.

use super::data::{TaskPlan, TaskSet};
use super::model::{Millis, Status};
use super::sessions::UserSpec;
use crate::protocol::error::{ErrorKind, VapiError};
use crate::protocol::filter::TaskQuery;

/// The most tasks one List Tasks answer may hold.
pub(crate) const MAX_TASKS: usize = 1000;

/// The visible tasks matching `q` at time `now`, in generation order.
pub(crate) fn list<'a>(
    tasks: &'a TaskSet,
    now: Millis,
    user: &UserSpec,
    q: &TaskQuery,
) -> Result<Vec<&'a TaskPlan>, VapiError> {
    if let Some((name, _)) = q.extra_params.first() {
        return Err(VapiError::new(
            ErrorKind::InvalidArgument,
            "vapi.bindings.typeconverter.unexpected.param",
            format!("Unexpected parameter {name}."),
        ));
    }
    if let Some(member) = q.extra_members.first() {
        return Err(VapiError::new(
            ErrorKind::InvalidArgument,
            "vapi.bindings.typeconverter.unexpected.field",
            format!("Unexpected field {} in the request body.", member.path()),
        ));
    }
    let f = &q.filter;
    let mut statuses = Vec::with_capacity(f.status.len());
    for s in &f.status {
        match Status::parse(s) {
            Some(st) => statuses.push(st),
            None => {
                return Err(VapiError::new(
                    ErrorKind::InvalidArgument,
                    "vapi.bindings.typeconverter.invalid.enum",
                    format!(
                        "Invalid value {s:?} for filter_spec.status: expected one of \
                         PENDING, RUNNING, BLOCKED, SUCCEEDED, FAILED."
                    ),
                ))
            }
        }
    }
    if f.tasks.is_empty() && f.services.is_empty() {
        return Err(VapiError::new(
            ErrorKind::InvalidArgument,
            "com.vmware.cis.task.filter_spec.tasks_or_services",
            "At least one of filter_spec.tasks and filter_spec.services must be set.",
        ));
    }

    // Sorted, deduplicated lists: binary search.
    let any = |list: &[String], v: &str| {
        list.is_empty() || list.binary_search_by(|x| x.as_str().cmp(v)).is_ok()
    };
    let mut out = Vec::new();
    for t in &tasks.tasks {
        let matches = user.may_see(t.service)
            && any(&f.tasks, &t.id)
            && any(&f.services, t.service)
            && any(&f.operations, t.operation)
            && any(&f.users, t.user)
            && (f.targets.is_empty()
                || t.target.as_ref().is_some_and(|tt| {
                    f.targets
                        .iter()
                        .any(|x| x.target_type == tt.kind && x.id == tt.id)
                }))
            && (statuses.is_empty() || statuses.contains(&t.status_at(now)));
        if matches {
            if out.len() == MAX_TASKS {
                return Err(VapiError::new(
                    ErrorKind::ResourceInaccessible,
                    "com.vmware.cis.task.list.too_many",
                    format!("More than {MAX_TASKS} tasks match the filter; narrow it down."),
                ));
            }
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::filter::{FilterSpec, Target};
    use crate::sim::data::EPOCH;

    fn query(filter: FilterSpec) -> TaskQuery {
        let mut q = TaskQuery {
            filter,
            ..TaskQuery::default()
        };
        q.normalize();
        q
    }

    fn all_services(set: &TaskSet) -> Vec<String> {
        let mut s: Vec<String> = set.tasks.iter().map(|t| t.service.to_string()).collect();
        s.sort();
        s.dedup();
        s
    }

    #[test]
    fn requires_tasks_or_services() {
        let set = TaskSet::generate(10, 1);
        let e = list(
            &set,
            EPOCH,
            &UserSpec::default_admin(),
            &query(FilterSpec::default()),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn fields_and_values_combine_as_documented() {
        let set = TaskSet::generate(400, 2);
        let admin = UserSpec::default_admin();
        let services = all_services(&set);
        let all = list(
            &set,
            EPOCH,
            &admin,
            &query(FilterSpec {
                services: services.clone(),
                ..FilterSpec::default()
            }),
        )
        .unwrap();
        assert_eq!(all.len(), 400);

        // Within a field: any value. Across fields: all.
        let two = vec![services[0].clone(), services[1].clone()];
        let got = list(
            &set,
            EPOCH,
            &admin,
            &query(FilterSpec {
                services: two.clone(),
                status: vec!["SUCCEEDED".into(), "FAILED".into()],
                ..FilterSpec::default()
            }),
        )
        .unwrap();
        let expected: Vec<_> = set
            .tasks
            .iter()
            .filter(|t| two.iter().any(|s| s == t.service))
            .filter(|t| matches!(t.status_at(EPOCH), Status::Succeeded | Status::Failed))
            .map(|t| t.id.clone())
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(
            got.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
            expected
        );

        // Targets match on type and id together.
        let with_target = set.tasks.iter().find(|t| t.target.is_some()).unwrap();
        let tt = with_target.target.as_ref().unwrap();
        let got = list(
            &set,
            EPOCH,
            &admin,
            &query(FilterSpec {
                tasks: vec![with_target.id.clone()],
                targets: vec![Target {
                    target_type: tt.kind.into(),
                    id: tt.id.clone(),
                }],
                ..FilterSpec::default()
            }),
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        let got = list(
            &set,
            EPOCH,
            &admin,
            &query(FilterSpec {
                tasks: vec![with_target.id.clone()],
                targets: vec![Target {
                    target_type: "Datastore".into(),
                    id: tt.id.clone(),
                }],
                ..FilterSpec::default()
            }),
        )
        .unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn visibility_and_the_limit() {
        let set = TaskSet::generate(1500, 3);
        let services = all_services(&set);
        let q = query(FilterSpec {
            services: services.clone(),
            ..FilterSpec::default()
        });
        let e = list(&set, EPOCH, &UserSpec::default_admin(), &q).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ResourceInaccessible);
        let narrow = UserSpec::restricted("u", "p", [services[0].clone()]);
        let got = list(&set, EPOCH, &narrow, &q).unwrap();
        assert!(!got.is_empty() && got.len() < 1000);
        assert!(got.iter().all(|t| t.service == services[0]));
    }

    #[test]
    fn rejects_extras_and_bad_statuses() {
        let set = TaskSet::generate(5, 1);
        let admin = UserSpec::default_admin();
        let mut q = query(FilterSpec {
            services: vec!["x".into()],
            ..FilterSpec::default()
        });
        q.extra_params.push(("bogus".into(), "1".into()));
        let e = list(&set, EPOCH, &admin, &q).unwrap_err();
        assert!(e.message.contains("bogus"));
        q.extra_params.clear();
        q.extra_members.push(crate::protocol::filter::ExtraMember {
            parent: crate::protocol::filter::Parent::FilterSpec,
            name: "nope".into(),
            raw: "1".into(),
        });
        let e = list(&set, EPOCH, &admin, &q).unwrap_err();
        assert!(e.message.contains("filter_spec.nope"));
        q.extra_members.clear();
        q.filter.status = vec!["DONE".into()];
        let e = list(&set, EPOCH, &admin, &q).unwrap_err();
        assert!(e.message.contains("filter_spec.status"));
    }
}
