//! Deterministic task data: generation from `(N, seed)` and evolution with time.
//!
//! Each task is generated as a *plan*: its identity (id, service, operation,
//! target, user, parent, description), a schedule (when it starts, when it is
//! blocked, when it ends) and an outcome with its `result` or `error`. The Info a
//! client sees is the plan evaluated at the simulator's clock ([`TaskPlan::info_at`]),
//! so without `--static` tasks move PENDING → RUNNING (→ BLOCKED → RUNNING) →
//! SUCCEEDED or FAILED with rising progress as wall-clock time passes, and a cache
//! serving stale answers shows. With `--static` the clock stands still at the
//! generation instant and every answer is byte-for-byte repeatable.
//!
//! Simulated time starts at [`EPOCH`] (not the wall clock) so that the same
//! `(N, seed)` gives the same timestamps on every run.

use super::model::{Data, Info, Message, Millis, Param, Progress, Status, Target};
use super::rng::SplitMix64;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Simulated time at the moment the simulator starts: 2025-01-15T09:00:00.000Z.
pub(crate) const EPOCH: Millis = 1_736_931_600_000;

const SECOND: Millis = 1000;
const MINUTE: Millis = 60 * SECOND;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;

/// What kind of object a service's operations act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    None,
    Vm,
    Host,
    Cluster,
}

impl TargetKind {
    fn make(self, rng: &mut SplitMix64) -> Option<Target> {
        let (kind, prefix, hi) = match self {
            TargetKind::None => return None,
            TargetKind::Vm => ("VirtualMachine", "vm-", 4000),
            TargetKind::Host => ("HostSystem", "host-", 400),
            TargetKind::Cluster => ("ClusterComputeResource", "domain-c", 60),
        };
        Some(Target {
            kind,
            id: format!("{prefix}{}", rng.range(1, hi)),
        })
    }

    /// The `params` key naming the target in descriptions.
    fn param(self) -> &'static str {
        match self {
            TargetKind::None => "version",
            TargetKind::Vm => "vm",
            TargetKind::Host => "host",
            TargetKind::Cluster => "cluster",
        }
    }
}

struct OpDef {
    id: &'static str,
    /// English phrase for the description, followed by the target.
    phrase: &'static str,
    cancelable: bool,
}

struct ServiceDef {
    id: &'static str,
    target: TargetKind,
    weight: u32,
    ops: &'static [OpDef],
}

const fn op(id: &'static str, phrase: &'static str, cancelable: bool) -> OpDef {
    OpDef {
        id,
        phrase,
        cancelable,
    }
}

/// Services of a vCenter 8 that run operations as cis tasks, with their operations.
static SERVICES: &[ServiceDef] = &[
    ServiceDef {
        id: "com.vmware.esx.settings.clusters.software",
        target: TargetKind::Cluster,
        weight: 5,
        ops: &[
            op("apply", "Remediating cluster", true),
            op("check", "Running remediation pre-checks on cluster", true),
            op("scan", "Checking software compliance of cluster", false),
            op("stage", "Staging software on cluster", true),
        ],
    },
    ServiceDef {
        id: "com.vmware.esx.settings.hosts.software",
        target: TargetKind::Host,
        weight: 3,
        ops: &[
            op("apply", "Remediating host", true),
            op("check", "Running remediation pre-checks on host", true),
            op("scan", "Checking software compliance of host", false),
        ],
    },
    ServiceDef {
        id: "com.vmware.esx.settings.clusters.configuration",
        target: TargetKind::Cluster,
        weight: 2,
        ops: &[
            op(
                "check_compliance",
                "Checking configuration compliance of cluster",
                false,
            ),
            op("apply", "Applying configuration to cluster", true),
        ],
    },
    ServiceDef {
        id: "com.vmware.vcenter.vm_template.library_items",
        target: TargetKind::Vm,
        weight: 3,
        ops: &[
            op(
                "create",
                "Creating a VM template from virtual machine",
                false,
            ),
            op(
                "deploy",
                "Deploying a VM template as virtual machine",
                false,
            ),
        ],
    },
    ServiceDef {
        id: "com.vmware.vcenter.ovf.library_item",
        target: TargetKind::Vm,
        weight: 2,
        ops: &[op(
            "deploy",
            "Deploying an OVF package as virtual machine",
            false,
        )],
    },
    ServiceDef {
        id: "com.vmware.vcenter.namespace_management.clusters",
        target: TargetKind::Cluster,
        weight: 2,
        ops: &[
            op("enable", "Enabling vSphere with Tanzu on cluster", false),
            op("disable", "Disabling vSphere with Tanzu on cluster", false),
            op("update", "Updating the supervisor of cluster", false),
        ],
    },
    ServiceDef {
        id: "com.vmware.appliance.update",
        target: TargetKind::None,
        weight: 1,
        ops: &[
            op("stage", "Staging appliance update", true),
            op("validate", "Validating appliance update", false),
            op("install", "Installing appliance update", false),
        ],
    },
];

/// Users tasks are attributed to, in vCenter's `DOMAIN\name` form.
static TASK_USERS: &[&str] = &[
    "VSPHERE.LOCAL\\Administrator",
    "VSPHERE.LOCAL\\svc-lifecycle",
    "VSPHERE.LOCAL\\ops-alice",
    "VSPHERE.LOCAL\\ops-bob",
    "CORP.EXAMPLE\\jdoe",
];

/// Why failed tasks failed.
static FAILURES: &[(&str, &str)] = &[
    (
        "com.vmware.vcenter.lcm.task.failed.timeout",
        "Operation timed out while waiting for",
    ),
    (
        "com.vmware.vcenter.lcm.task.failed.maintenance_mode",
        "Could not enter maintenance mode on",
    ),
    (
        "com.vmware.vcenter.lcm.task.failed.unreachable",
        "Lost connection to",
    ),
    (
        "com.vmware.vcenter.lcm.task.failed.insufficient_resources",
        "Insufficient resources to complete the operation on",
    ),
];

/// Every service id the simulator generates tasks for.
pub fn service_ids() -> Vec<&'static str> {
    SERVICES.iter().map(|s| s.id).collect()
}

/// One generated task: identity, schedule and outcome.
#[derive(Debug, Clone)]
pub(crate) struct TaskPlan {
    pub(crate) id: String,
    pub(crate) service: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) target: Option<Target>,
    pub(crate) user: &'static str,
    pub(crate) parent: Option<String>,
    pub(crate) description: Message,
    cancelable: bool,
    /// When the task starts running (before that it is PENDING).
    start: Millis,
    /// An interval within `[start, end)` during which it is BLOCKED.
    blocked: Option<(Millis, Millis)>,
    /// When it ends with `outcome`.
    end: Millis,
    outcome: Status,
    /// Progress reached when it failed (FAILED) or `total`.
    final_completed: i64,
    total: i64,
    error: Option<Message>,
    result: Option<Data>,
}

impl TaskPlan {
    pub(crate) fn status_at(&self, now: Millis) -> Status {
        if now < self.start {
            Status::Pending
        } else if now >= self.end {
            self.outcome
        } else if matches!(self.blocked, Some((from, to)) if now >= from && now < to) {
            Status::Blocked
        } else {
            Status::Running
        }
    }

    /// Progress while running: the fraction of un-blocked running time elapsed,
    /// frozen while blocked, never reaching `total` before the end.
    fn completed_at(&self, now: Millis) -> i64 {
        let blocked_len = self.blocked.map_or(0, |(f, t)| t - f);
        let work = (self.end - self.start - blocked_len).max(1);
        let blocked_before = match self.blocked {
            Some((f, t)) if now >= f => now.min(t) - f,
            _ => 0,
        };
        let done = (now - self.start - blocked_before).clamp(0, work);
        let scaled = i128::from(self.final_completed) * i128::from(done) / i128::from(work);
        (scaled as i64)
            .min(self.final_completed.saturating_sub(1))
            .max(0)
    }

    /// The task's Info at simulated time `now`, obeying the field rules: PENDING has
    /// neither times nor progress; RUNNING and BLOCKED have `start_time` and
    /// `progress`; SUCCEEDED and FAILED also `end_time`; FAILED has `error`;
    /// SUCCEEDED has `result`.
    pub(crate) fn info_at(&self, now: Millis) -> Info<'_> {
        let status = self.status_at(now);
        let (start_time, end_time, progress) = match status {
            Status::Pending => (None, None, None),
            Status::Running | Status::Blocked => {
                let completed = self.completed_at(now);
                (
                    Some(self.start),
                    None,
                    Some(self.progress(completed, status)),
                )
            }
            Status::Succeeded | Status::Failed => (
                Some(self.start),
                Some(self.end),
                Some(self.progress(self.final_completed, status)),
            ),
        };
        Info {
            description: &self.description,
            service: self.service,
            operation: self.operation,
            parent: self.parent.as_deref(),
            target: self.target.as_ref(),
            status,
            cancelable: self.cancelable
                && matches!(status, Status::Pending | Status::Running | Status::Blocked),
            error: self.error.as_ref().filter(|_| status == Status::Failed),
            start_time,
            end_time,
            user: Some(self.user),
            progress,
            result: self.result.as_ref().filter(|_| status == Status::Succeeded),
        }
    }

    fn progress(&self, completed: i64, status: Status) -> Progress {
        let (id, default_message) = match status {
            Status::Blocked => (
                "com.vmware.cis.task.progress.blocked",
                format!(
                    "Waiting for another operation ({completed} of {} done)",
                    self.total
                ),
            ),
            Status::Failed => (
                "com.vmware.cis.task.progress.failed",
                format!("Stopped after {completed} of {}", self.total),
            ),
            _ => (
                "com.vmware.cis.task.progress",
                format!("{completed} of {} done", self.total),
            ),
        };
        Progress {
            total: self.total,
            completed,
            message: Message {
                id: id.to_string(),
                default_message,
                args: vec![completed.to_string(), self.total.to_string()],
                params: Vec::new(),
            },
        }
    }
}

/// All tasks of one simulator, in generation order, with an index by id.
#[derive(Debug)]
pub(crate) struct TaskSet {
    pub(crate) tasks: Vec<TaskPlan>,
    index: HashMap<String, usize>,
}

impl TaskSet {
    /// Generates `n` tasks from `seed`: the same arguments give the same tasks.
    pub(crate) fn generate(n: usize, seed: u64) -> TaskSet {
        let mut rng = SplitMix64::new(seed ^ 0x5eed_7a5c_0000_0001);
        let mut tasks = Vec::with_capacity(n);
        let mut seen = HashSet::with_capacity(n);
        let mut by_service: HashMap<&'static str, Vec<usize>> = HashMap::new();
        let weights: Vec<u32> = SERVICES.iter().map(|s| s.weight).collect();
        for i in 0..n {
            let svc = &SERVICES[rng.weighted(&weights)];
            let op = &svc.ops[rng.index(svc.ops.len())];
            let id = loop {
                let id = format!("{}:{}", uuid_v4(&mut rng), svc.id);
                if seen.insert(id.clone()) {
                    break id;
                }
            };
            let siblings = by_service.entry(svc.id).or_default();
            let parent = if !siblings.is_empty() && rng.unit() < 0.1 {
                let p: &TaskPlan = &tasks[siblings[rng.index(siblings.len())]];
                Some(p.id.clone())
            } else {
                None
            };
            siblings.push(i);
            tasks.push(plan(&mut rng, id, svc, op, parent));
        }
        let index = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        TaskSet { tasks, index }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&TaskPlan> {
        self.index.get(id).map(|&i| &self.tasks[i])
    }
}

/// A random UUID in the version-4 layout, lower-case hex.
fn uuid_v4(rng: &mut SplitMix64) -> String {
    let hi = rng.next_u64();
    let lo = rng.next_u64();
    let hi = (hi & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

fn plan(
    rng: &mut SplitMix64,
    id: String,
    svc: &'static ServiceDef,
    op: &'static OpDef,
    parent: Option<String>,
) -> TaskPlan {
    let target = svc.target.make(rng);
    let user = TASK_USERS[rng.weighted(&[6, 3, 2, 2, 1])];
    let subject = match &target {
        Some(t) => t.id.clone(),
        None => format!("8.0.{}.{:05}", rng.range(1, 3), rng.range(100, 400) * 100),
    };

    // Schedule relative to EPOCH: some tasks long finished, some running now, some
    // blocked now, some queued to start soon. Running and queued ones change state
    // within minutes of the simulator starting.
    let duration = rng.range(20 * SECOND, 10 * MINUTE);
    let phase = rng.unit();
    let (start, blocked) = if phase < 0.55 {
        let end = -rng.range(MINUTE, 7 * DAY);
        (end - duration, None)
    } else if phase < 0.80 {
        (-rng.range(0, duration * 9 / 10), None)
    } else if phase < 0.86 {
        // Started at most half its work ago, so that it ends after the block.
        let before = rng.range(5 * SECOND, MINUTE.min(duration / 2));
        let from = -rng.range(0, before);
        let until = rng.range(10 * SECOND, 2 * MINUTE);
        (-before, Some((from, until)))
    } else {
        (rng.range(2 * SECOND, 5 * MINUTE), None)
    };
    let blocked_len = blocked.map_or(0, |(f, t)| t - f);
    let end = start + duration + blocked_len;
    let failed = rng.unit() < 0.15;
    let total = [100, 100, 100, 1000, 16][rng.index(5)];
    let final_completed = if failed {
        rng.range(1, total - 1)
    } else {
        total
    };

    let mut params = vec![(svc.target.param().to_string(), Param::S(subject.clone()))];
    let description_args;
    let default_message;
    if svc.target == TargetKind::Cluster {
        let hosts = rng.range(2, 16);
        params.push(("host_count".to_string(), Param::I(hosts)));
        default_message = format!("{} {subject} ({hosts} hosts)", op.phrase);
        description_args = vec![subject.clone(), hosts.to_string()];
    } else {
        default_message = format!("{} {subject}", op.phrase);
        description_args = vec![subject.clone()];
    }
    if rng.unit() < 0.3 {
        params.push((
            "requested".to_string(),
            Param::Dt(EPOCH + start - rng.range(SECOND, 10 * MINUTE)),
        ));
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let description = Message {
        id: format!("{}.{}", svc.id, op.id),
        default_message,
        args: description_args,
        params,
    };

    let error = failed.then(|| {
        let (eid, phrase) = FAILURES[rng.index(FAILURES.len())];
        Message {
            id: eid.to_string(),
            default_message: format!("{phrase} {subject}."),
            args: vec![subject.clone()],
            params: vec![("object".to_string(), Param::S(subject.clone()))],
        }
    });
    let result = (!failed).then(|| result_for(rng, svc, op, &subject, EPOCH + end));

    TaskPlan {
        id,
        service: svc.id,
        operation: op.id,
        target,
        user,
        parent,
        description,
        cancelable: op.cancelable,
        start: EPOCH + start,
        blocked: blocked.map(|(f, t)| (EPOCH + f, EPOCH + t)),
        end: EPOCH + end,
        outcome: if failed {
            Status::Failed
        } else {
            Status::Succeeded
        },
        final_completed,
        total,
        error,
        result,
    }
}

/// An operation result: a structure holding a map of per-item structures, each
/// with a nested map of notifications, so both levels of map conversion show.
/// Structures are named as vAPI names an operation's nested result types
/// (`<service>.<operation>_result`, `<service>.<operation>_status`), so that
/// JSON-RPC answers carry names a pass-through must keep.
fn result_for(
    rng: &mut SplitMix64,
    svc: &ServiceDef,
    op: &OpDef,
    subject: &str,
    end: Millis,
) -> Data {
    let items: Vec<String> = match svc.target {
        TargetKind::Cluster => {
            let mut hosts: Vec<String> = (0..rng.range(1, 4))
                .map(|_| format!("host-{}", rng.range(1, 400)))
                .collect();
            hosts.sort();
            hosts.dedup();
            hosts
        }
        _ => vec![subject.to_string()],
    };
    let names = Data::List(items.iter().cloned().map(Data::Str).collect());
    let details = items
        .into_iter()
        .map(|item| {
            let mut notes = vec![(
                "info".to_string(),
                Data::Str(format!("Operation completed on {item}.")),
            )];
            if rng.unit() < 0.3 {
                notes.push((
                    "warning".to_string(),
                    Data::Str("A reboot is recommended to finish the operation.".into()),
                ));
            }
            let entry = Data::Struct {
                name: format!("{}.{}_status", svc.id, op.id),
                fields: vec![
                    ("notifications", Data::Map(notes)),
                    ("reboot_required", Data::Bool(rng.unit() < 0.2)),
                    ("status", Data::Str("OK".into())),
                ],
            };
            (item, entry)
        })
        .collect();
    Data::Struct {
        name: format!("{}.{}_result", svc.id, op.id),
        fields: vec![
            ("commit", Data::Int(rng.range(1, 500))),
            ("completion_time", Data::Str(super::model::iso8601(end))),
            ("details", Data::Map(details)),
            ("items", names),
            ("status", Data::Str("COMPLIANT".into())),
        ],
    }
}

/// The simulator's clock: [`EPOCH`] plus wall-clock time since start (unless
/// frozen by `--static`) plus any manual advance.
#[derive(Debug)]
pub(crate) struct Clock {
    started: Instant,
    frozen: bool,
    offset_ms: AtomicI64,
}

impl Clock {
    pub(crate) fn new(frozen: bool) -> Clock {
        Clock {
            started: Instant::now(),
            frozen,
            offset_ms: AtomicI64::new(0),
        }
    }

    pub(crate) fn now(&self) -> Millis {
        let elapsed = if self.frozen {
            0
        } else {
            i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX / 2)
        };
        EPOCH + elapsed + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves simulated time forward by `by` (also when frozen).
    pub(crate) fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        // Saturate far in the future rather than wrap into the past.
        let _ = self
            .offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_add(ms).min(i64::MAX / 4))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::model::{Shape, Writer};

    #[test]
    fn generation_is_deterministic_and_seed_dependent() {
        let a = TaskSet::generate(300, 1);
        let b = TaskSet::generate(300, 1);
        let c = TaskSet::generate(300, 2);
        let ids = |s: &TaskSet| s.tasks.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        let ca: HashSet<_> = ids(&c).into_iter().collect();
        assert!(ids(&a).iter().all(|id| !ca.contains(id)));
        let mut wa = Writer::new(Shape::Api);
        wa.task_map(
            a.tasks.iter().map(|t| (t.id.as_str(), t.info_at(EPOCH))),
            false,
        );
        let mut wb = Writer::new(Shape::Api);
        wb.task_map(
            b.tasks.iter().map(|t| (t.id.as_str(), t.info_at(EPOCH))),
            false,
        );
        assert_eq!(wa.finish(), wb.finish());
    }

    #[test]
    fn ids_are_unique_and_end_with_the_service() {
        let s = TaskSet::generate(2000, 9);
        let unique: HashSet<_> = s.tasks.iter().map(|t| &t.id).collect();
        assert_eq!(unique.len(), 2000);
        for t in &s.tasks {
            let (uuid, svc) = t.id.split_once(':').unwrap();
            assert_eq!(svc, t.service);
            assert_eq!(uuid.len(), 36);
            assert_eq!(&uuid[14..15], "4");
            assert!(s.get(&t.id).is_some());
        }
    }

    #[test]
    fn every_status_occurs_and_obeys_the_field_rules() {
        let s = TaskSet::generate(1000, 3);
        let mut seen = HashSet::new();
        for t in &s.tasks {
            let i = t.info_at(EPOCH);
            seen.insert(i.status.as_str());
            match i.status {
                Status::Pending => {
                    assert!(i.start_time.is_none() && i.end_time.is_none() && i.progress.is_none())
                }
                Status::Running | Status::Blocked => {
                    assert!(i.start_time.is_some() && i.end_time.is_none());
                    let p = i.progress.unwrap();
                    assert!(p.completed < p.total);
                }
                Status::Succeeded => {
                    assert!(i.start_time.is_some() && i.end_time.is_some());
                    assert!(i.result.is_some() && i.error.is_none());
                    assert!(!i.cancelable);
                }
                Status::Failed => {
                    assert!(i.start_time.is_some() && i.end_time.is_some());
                    assert!(i.error.is_some() && i.result.is_none());
                }
            }
            assert!(!i.description.params.is_empty());
        }
        assert_eq!(seen.len(), 5, "{seen:?}");
    }

    #[test]
    fn tasks_advance_with_time() {
        let s = TaskSet::generate(500, 4);
        let mut started = 0;
        let mut finished = 0;
        let mut progressed = 0;
        for t in &s.tasks {
            let (a, b) = (t.info_at(EPOCH), t.info_at(EPOCH + 30 * SECOND));
            match (a.status, b.status) {
                (Status::Pending, Status::Running) => started += 1,
                (Status::Running, Status::Succeeded | Status::Failed) => finished += 1,
                (Status::Running, Status::Running) => {
                    let (pa, pb) = (a.progress.unwrap(), b.progress.unwrap());
                    assert!(pb.completed >= pa.completed);
                    if pb.completed > pa.completed {
                        progressed += 1;
                    }
                }
                (x, y) => {
                    // Statuses only move forward.
                    let order = |s: Status| match s {
                        Status::Pending => 0,
                        Status::Running | Status::Blocked => 1,
                        _ => 2,
                    };
                    assert!(order(y) >= order(x), "{x:?} -> {y:?}");
                }
            }
        }
        assert!(started > 0 && finished > 0 && progressed > 0);
        // Eventually everything is done.
        for t in &s.tasks {
            let st = t.status_at(EPOCH + DAY);
            assert!(matches!(st, Status::Succeeded | Status::Failed));
        }
    }

    #[test]
    fn frozen_clock_stands_still_until_advanced() {
        let c = Clock::new(true);
        assert_eq!(c.now(), EPOCH);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now(), EPOCH + 2000);
    }
}
