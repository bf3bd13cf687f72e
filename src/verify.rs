//! Round-trip verification of a migration set, on scratch in-memory databases only.
//!
//! For every upgrade step the set's expected schema of the step's source version is built, the
//! step and its rollback run with the same checks as a real migration, and the schema found
//! afterwards is compared with the one before: a rollback that loses a constraint, leaves an index
//! behind or rebuilds a table `AS SELECT` is caught and every difference named.

use std::path::Path;

use serde::Serialize;

use crate::apply;
use crate::catalog::{Script, Set};
use crate::schema;
use crate::scratch;

/// What verifying one upgrade step found.
#[derive(Debug, Clone, Serialize)]
pub struct StepCheck {
    pub from: String,
    pub to: String,
    pub script: String,
    pub rollback: Option<String>,
    pub status: StepStatus,
    /// For `differs`: each difference; for `failed`: the error.
    pub differences: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Up and back down restores the schema exactly.
    Restores,
    /// The schema after the rollback differs from the one before the step.
    Differs,
    /// There is no rollback script from the step's target back to its source.
    NoRollback,
    /// A script failed on the scratch database.
    Failed,
}

impl StepCheck {
    /// A difference or a failure makes verification fail; a missing rollback is only listed.
    pub fn is_problem(&self) -> bool {
        matches!(self.status, StepStatus::Differs | StepStatus::Failed)
    }
}

/// Verifies every upgrade step of `set`, in version order.
pub fn verify_set(set: &Set) -> Vec<StepCheck> {
    let mut upgrades: Vec<&Script> = set.upgrades.iter().collect();
    upgrades.sort_by(|a, b| a.from.cmp(&b.from));
    upgrades
        .into_iter()
        .map(|up| verify_step(set, up))
        .collect()
}

fn verify_step(set: &Set, up: &Script) -> StepCheck {
    let mut check = StepCheck {
        from: up.from.to_string(),
        to: up.to.to_string(),
        script: up.file.clone(),
        rollback: None,
        status: StepStatus::NoRollback,
        differences: Vec::new(),
    };
    let Some(down) = set.step_from(&up.to, true) else {
        return check;
    };
    check.rollback = Some(format!("rollback/{}", down.file));
    if down.to != up.from {
        check.status = StepStatus::Differs;
        check.differences.push(format!(
            "rollback/{} goes back to v{}, not to v{}",
            down.file, down.to, up.from
        ));
        return check;
    }
    match round_trip(set, up, down) {
        Ok(differences) => {
            check.status = if differences.is_empty() {
                StepStatus::Restores
            } else {
                StepStatus::Differs
            };
            check.differences = differences;
        }
        Err(e) => {
            check.status = StepStatus::Failed;
            check.differences.push(e.to_string());
        }
    }
    check
}

/// Builds the source version, runs the step up and its rollback down, and compares.
fn round_trip(set: &Set, up: &Script, down: &Script) -> Result<Vec<String>, crate::Error> {
    let scratch = Path::new(scratch::SCRATCH);
    let conn = scratch::replay(set, &up.from)?;
    let read =
        |c: &rusqlite::Connection| schema::read(c).map_err(|e| crate::Error::sqlite(scratch, e));
    let before = read(&conn)?;
    apply::run_step(&conn, scratch, &crate::plan::Step::script(up))?;
    // A rollback that fails its own checks (a CTAS rebuild leaves foreign keys pointing at a
    // parent with no key) still leaves a schema to compare: name its failure and every loss.
    let down_failed = apply::run_step(&conn, scratch, &crate::plan::Step::script(down)).err();
    let mut differences = schema::diff(&before, &read(&conn)?);
    if let Some(e) = down_failed {
        let why = match e {
            crate::Error::StepFailed {
                script, message, ..
            } => {
                format!("rollback/{script} fails: {message}")
            }
            other => format!("the rollback fails: {other}"),
        };
        differences.insert(0, why);
    }
    Ok(differences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_step_rolls_back_to_the_same_schema() {
        for name in crate::discovery::DbName::ALL {
            let set = crate::catalog::load(&crate::catalog::Root::BuiltIn, name.as_str()).unwrap();
            for check in verify_set(&set) {
                assert_eq!(check.status, StepStatus::Restores, "{name:?}: {check:?}");
            }
        }
    }
}
