//! How long work says how far it has got, without printing: the CLI decides whether and how to
//! show it (a bar on a terminal after half a second, nothing in a pipe or with JSON).

use std::sync::Arc;

/// What a phase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Steps,
}

/// Receives progress. Calls come from the working thread, `tick` also from inside SQLite.
pub trait Progress: Send + Sync {
    /// A phase begins, e.g. "backing up project.db", with `total` units to do.
    fn begin(&self, label: &str, total: u64, unit: Unit);
    /// `done` units of the current phase are done.
    fn set(&self, done: u64);
    /// Still working (a long statement): a chance to redraw.
    fn tick(&self);
    /// The phase is over.
    fn end(&self);
}

/// Shared so that SQLite's progress handler, which must own what it calls, can hold it.
pub type Reporter = Arc<dyn Progress>;

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str, _: u64, _: Unit) {}
    fn set(&self, _: u64) {}
    fn tick(&self) {}
    fn end(&self) {}
}

/// A reporter that reports nothing.
pub fn silent() -> Reporter {
    Arc::new(Silent)
}
