//! Stopping cleanly on SIGINT or SIGTERM. The CLI asks for the signals with `listen`; the library
//! looks at the flag where stopping leaves nothing behind (SQLite's progress handler during a step,
//! each page step of a backup, before each database) and unwinds as from any failure: the
//! transaction rolls back and the unfinished backup is removed.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::Error;

const SIGINT: usize = signal_hook::consts::SIGINT as usize;
const SIGTERM: usize = signal_hook::consts::SIGTERM as usize;

/// The signal received, or 0.
fn flag() -> &'static Arc<AtomicUsize> {
    static FLAG: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// From now on SIGINT and SIGTERM set the flag instead of ending the process; a second one ends
/// it at once (exit 130 or 143), for a user who will not wait for the rollback.
pub fn listen() -> std::io::Result<()> {
    for signal in [SIGINT, SIGTERM] {
        let code = i32::try_from(128 + signal).unwrap_or(1);
        let raw = i32::try_from(signal).unwrap_or(0);
        let requested = Arc::new(std::sync::atomic::AtomicBool::new(false));
        signal_hook::flag::register_conditional_shutdown(raw, code, Arc::clone(&requested))?;
        signal_hook::flag::register(raw, requested)?;
        signal_hook::flag::register_usize(raw, Arc::clone(flag()), signal)?;
    }
    Ok(())
}

/// The signal that asked the run to stop, if one did.
pub fn received() -> Option<i32> {
    match flag().load(Ordering::Relaxed) {
        0 => None,
        s => i32::try_from(s).ok(),
    }
}

/// An error when a signal asked the run to stop: call it before starting on a database.
pub fn check(path: &Path) -> Result<(), Error> {
    match received() {
        None => Ok(()),
        Some(signal) => Err(Error::Interrupted {
            path: path.to_path_buf(),
            signal,
        }),
    }
}

/// The error a failure stands for: a statement or copy cut short by a signal fails with SQLite's
/// "interrupted", which says less than that the user stopped the run.
pub fn explain(path: &Path, e: Error) -> Error {
    match received() {
        Some(signal) => Error::Interrupted {
            path: path.to_path_buf(),
            signal,
        },
        None => e,
    }
}

/// The name of a signal, for messages.
pub fn name(signal: i32) -> &'static str {
    match usize::try_from(signal) {
        Ok(SIGINT) => "SIGINT",
        Ok(SIGTERM) => "SIGTERM",
        _ => "a signal",
    }
}
