//! Which vCenter each task belongs to, as List Tasks answers showed it.
//!
//! A task id names its service, not its vCenter, so Get Task would have to ask every
//! vCenter. Task waiters poll tasks they just listed or started, so the merge
//! remembers where each listed task came from, and Get Task asks that vCenter
//! alone. Nothing is learned until the first Get Task asks (deployments that never
//! use it pay nothing), and the memory is bounded: two generations of at most
//! `capacity / 2` ids each; when the young one is full it becomes the old one and
//! the oldest ids are forgotten. A forgotten or wrong owner costs one ask of every
//! vCenter, never a wrong answer (the owner's `not_found` sends the question to all).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub struct TaskOwners {
    /// Set by the first lookup: from then on, lists record owners.
    wanted: AtomicBool,
    generations: Mutex<Generations>,
    /// Ids per generation.
    half: usize,
}

#[derive(Default)]
struct Generations {
    young: HashMap<Box<str>, u16>,
    old: HashMap<Box<str>, u16>,
}

impl TaskOwners {
    /// Remembers at most `capacity` task ids.
    pub fn new(capacity: usize) -> TaskOwners {
        TaskOwners {
            wanted: AtomicBool::new(false),
            generations: Mutex::new(Generations::default()),
            half: (capacity / 2).max(1),
        }
    }

    /// Whether lists should record owners (someone has asked for a task).
    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    /// The vCenter (configuration index) task `id` was last listed by.
    pub fn owner(&self, id: &str) -> Option<usize> {
        self.wanted.store(true, Ordering::Relaxed);
        let g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        g.young
            .get(id)
            .or_else(|| g.old.get(id))
            .map(|&i| usize::from(i))
    }

    /// Records that vCenter `index` listed each of `ids`.
    pub fn record<'a>(&self, index: usize, ids: impl IntoIterator<Item = &'a str>) {
        let Ok(index) = u16::try_from(index) else {
            return;
        };
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if g.young.len() >= self.half {
                g.old = std::mem::take(&mut g.young);
            }
            match g.young.get_mut(id) {
                Some(owner) => *owner = index,
                None => {
                    g.young.insert(id.into(), index);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_remembered_within_the_bound() {
        let owners = TaskOwners::new(4);
        assert!(!owners.wanted());
        assert_eq!(owners.owner("a"), None);
        assert!(owners.wanted(), "a lookup turns recording on");
        owners.record(1, ["a", "b"]);
        assert_eq!(owners.owner("a"), Some(1));
        owners.record(2, ["a"]);
        assert_eq!(owners.owner("a"), Some(2), "the latest list wins");
        // Two more generations' worth: the first ids are forgotten.
        owners.record(0, ["c", "d", "e", "f", "g"]);
        assert_eq!(owners.owner("b"), None);
        assert_eq!(owners.owner("g"), Some(0));
        let g = owners.generations.lock().unwrap();
        assert!(g.young.len() + g.old.len() <= 4);
    }
}
