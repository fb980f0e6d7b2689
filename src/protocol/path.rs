//! Reading request paths and queries: the small rules both REST families share.

/// Whether `query` holds the parameter `pair` (`name=value`) exactly.
pub(crate) fn has_param(query: Option<&str>, pair: &str) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p == pair))
}

/// The task id in a Get Task path (`{tasks path}/{task}`), if `path` is one: one
/// non-empty segment.
pub(crate) fn task_segment<'p>(tasks_path: &str, path: &'p str) -> Option<&'p str> {
    path.strip_prefix(tasks_path)?
        .strip_prefix('/')
        .filter(|id| !id.is_empty() && !id.contains('/'))
}
