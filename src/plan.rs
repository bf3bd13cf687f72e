//! What to run: the chain of scripts from a database's version to its target. Pure, no I/O.
//!
//! A chain follows upgrade scripts (or rollback scripts, downward) from the current version until it
//! lands exactly on the target; a script may skip versions. Every rule a plan can break is checked
//! here, so a plan that exists can be run.

use crate::catalog::{Script, Set};
use crate::version::Version;

/// Where a database should end up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The set's latest version.
    Latest,
    /// A given version, up or down.
    Version(Version),
    /// One step down along the rollback scripts.
    Rollback,
}

/// Why no plan could be made. Shown after the database's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the migration set {set} has no initial schema and no upgrade script, so it has no latest version: add its scripts")]
    EmptySet { set: String },

    #[error("the database is at v{current}, newer than the latest migration (v{latest}): update AIFP, or use the aifp-migrate and migrations that came with that version")]
    Ahead { current: Version, latest: Version },

    #[error("target v{target} is newer than the latest migration (v{latest}): pick a version up to v{latest}")]
    TargetAhead { target: Version, latest: Version },

    #[error("no {kind} script starts at v{at}, so the chain to v{target} stops there: add one (e.g. {expected})")]
    Gap {
        kind: &'static str,
        at: Version,
        target: Version,
        expected: String,
    },

    #[error("{file} goes from v{from} to v{to}, past the target v{target}: no chain reaches v{target} exactly, so pick another --target")]
    Overshoot {
        file: String,
        from: Version,
        to: Version,
        target: Version,
    },

    #[error("the database is at v{at} and no rollback script starts there: add rollback/v{at}_to_v<older>.sql to roll it back")]
    NoRollback { at: Version },

    #[error("the database is at v{at}, the first version of its migration set: there is nothing to roll back to")]
    AtFirstVersion { at: Version },
}

/// Turns a `Target` into the version to reach from `current`.
pub fn resolve(set: &Set, current: &Version, target: &Target) -> Result<Version, PlanError> {
    let latest = set.latest().ok_or_else(|| PlanError::EmptySet {
        set: set.name.clone(),
    })?;
    if current > latest {
        return Err(PlanError::Ahead {
            current: current.clone(),
            latest: latest.clone(),
        });
    }
    match target {
        Target::Latest => Ok(latest.clone()),
        Target::Version(v) if v > latest => Err(PlanError::TargetAhead {
            target: v.clone(),
            latest: latest.clone(),
        }),
        Target::Version(v) => Ok(v.clone()),
        Target::Rollback => match set.step_from(current, true) {
            Some(s) => Ok(s.to.clone()),
            None if set.versions().all(|v| v >= current) => Err(PlanError::AtFirstVersion {
                at: current.clone(),
            }),
            None => Err(PlanError::NoRollback {
                at: current.clone(),
            }),
        },
    }
}

/// The scripts that lead from `from` to exactly `to`, in order (empty when they are equal).
pub fn chain<'s>(set: &'s Set, from: &Version, to: &Version) -> Result<Vec<&'s Script>, PlanError> {
    let down = to < from;
    let mut steps = Vec::new();
    let mut at = from;
    while at != to {
        let Some(script) = set.step_from(at, down) else {
            let (kind, expected) = if down {
                ("rollback", format!("rollback/v{at}_to_v{to}.sql"))
            } else {
                ("upgrade", format!("v{at}_to_v{to}.sql"))
            };
            return Err(PlanError::Gap {
                kind,
                at: at.clone(),
                target: to.clone(),
                expected,
            });
        };
        let past = if down {
            &script.to < to
        } else {
            &script.to > to
        };
        if past {
            return Err(PlanError::Overshoot {
                file: script.file.clone(),
                from: script.from.clone(),
                to: script.to.clone(),
                target: to.clone(),
            });
        }
        steps.push(script);
        at = &script.to;
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{parse_set, RawFile};

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn set(names: &[&str]) -> Set {
        let files = names
            .iter()
            .map(|n| {
                let (rollback, name) = match n.strip_prefix("rollback/") {
                    Some(rest) => (true, rest),
                    None => (false, *n),
                };
                RawFile {
                    rollback,
                    name: name.to_string(),
                    origin: n.to_string(),
                    bytes: Vec::new(),
                }
            })
            .collect();
        parse_set("project", files).unwrap()
    }

    fn files(steps: &[&Script]) -> Vec<String> {
        steps.iter().map(|s| s.file.clone()).collect()
    }

    fn project() -> Set {
        set(&[
            "v1.0_initial_schema.sql",
            "v1.0_to_v1.1_git.sql",
            "v1.1_to_v1.2_notes.sql",
            "rollback/v1.1_to_v1.0_git.sql",
            "rollback/v1.2_to_v1.1_notes.sql",
        ])
    }

    #[test]
    fn chain_up_follows_upgrades_in_order() {
        let s = project();
        let steps = chain(&s, &v("1.0"), &v("1.2")).unwrap();
        assert_eq!(
            files(&steps),
            ["v1.0_to_v1.1_git.sql", "v1.1_to_v1.2_notes.sql"]
        );
    }

    #[test]
    fn chain_down_follows_rollbacks_in_order() {
        let s = project();
        let steps = chain(&s, &v("1.2"), &v("1")).unwrap();
        assert_eq!(
            files(&steps),
            ["v1.2_to_v1.1_notes.sql", "v1.1_to_v1.0_git.sql"]
        );
    }

    #[test]
    fn chain_to_the_same_version_is_empty_whatever_the_spelling() {
        assert!(chain(&project(), &v("1.2"), &v("1.2.0"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_script_may_skip_versions() {
        let s = set(&["v1.0_to_v1.5.sql", "v1.5_to_v2.sql"]);
        assert_eq!(
            files(&chain(&s, &v("1"), &v("2")).unwrap()),
            ["v1.0_to_v1.5.sql", "v1.5_to_v2.sql"]
        );
    }

    #[test]
    fn chain_stops_at_a_gap_and_names_the_missing_version() {
        let s = set(&["v1.0_to_v1.1.sql", "v1.2_to_v1.3.sql"]);
        let err = chain(&s, &v("1.0"), &v("1.3")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no upgrade script starts at v1.1, so the chain to v1.3 stops there: add one (e.g. v1.1_to_v1.3.sql)"
        );
        let err = chain(&s, &v("1.3"), &v("1.0")).unwrap_err();
        assert!(matches!(err, PlanError::Gap { kind: "rollback", ref at, .. } if *at == v("1.3")));
    }

    #[test]
    fn a_chain_that_jumps_past_the_target_is_refused() {
        let s = set(&["v1.0_to_v1.2.sql", "v1.2_to_v1.3.sql"]);
        let err = chain(&s, &v("1.0"), &v("1.1")).unwrap_err();
        assert!(matches!(err, PlanError::Overshoot { .. }), "{err}");
        assert!(err
            .to_string()
            .starts_with("v1.0_to_v1.2.sql goes from v1.0 to v1.2, past the target v1.1"));
    }

    #[test]
    fn latest_target_is_the_highest_version_in_the_set() {
        assert_eq!(
            resolve(&project(), &v("1.0"), &Target::Latest).unwrap(),
            v("1.2")
        );
    }

    #[test]
    fn a_database_newer_than_the_latest_script_is_ahead_for_every_target() {
        for target in [Target::Latest, Target::Rollback, Target::Version(v("1.0"))] {
            let err = resolve(&project(), &v("1.3"), &target).unwrap_err();
            assert_eq!(
                err,
                PlanError::Ahead {
                    current: v("1.3"),
                    latest: v("1.2")
                }
            );
        }
    }

    #[test]
    fn rollback_is_one_step_down_along_the_rollback_scripts() {
        assert_eq!(
            resolve(&project(), &v("1.2"), &Target::Rollback).unwrap(),
            v("1.1")
        );
        let err = resolve(&project(), &v("1.0"), &Target::Rollback).unwrap_err();
        assert_eq!(err, PlanError::AtFirstVersion { at: v("1.0") });
        let gap = set(&[
            "v1.0_to_v1.1.sql",
            "v1.1_to_v1.2.sql",
            "rollback/v1.1_to_v1.0.sql",
        ]);
        let err = resolve(&gap, &v("1.2"), &Target::Rollback).unwrap_err();
        assert_eq!(err, PlanError::NoRollback { at: v("1.2") });
    }

    #[test]
    fn a_target_above_the_latest_is_refused() {
        let err = resolve(&project(), &v("1.0"), &Target::Version(v("1.10"))).unwrap_err();
        assert!(matches!(err, PlanError::TargetAhead { .. }));
    }

    #[test]
    fn an_empty_set_has_no_latest_version() {
        let err = resolve(&set(&[]), &v("1.0"), &Target::Latest).unwrap_err();
        assert!(matches!(err, PlanError::EmptySet { .. }));
    }
}
