//! aifp-migrate: keeps the SQLite databases of an AIFP installation at the schema version the
//! installed AIFP expects.
//!
//! The modules are the stages a run passes through: `discovery` (where the databases are),
//! `inspect` (what they hold), `catalog` (what scripts exist), `plan` (what to run, pure),
//! `backup` and `apply` (the writes), `report` (text and JSON). `run` strings them together.

#![forbid(unsafe_code)]

pub mod apply;
pub mod backup;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod converge;
pub mod discovery;
pub mod error;
pub mod history;
pub mod inspect;
pub mod interrupt;
pub mod options;
pub mod package;
pub mod plan;
pub mod progress;
pub mod rehearse;
pub mod report;
pub mod restore;
pub mod run;
pub mod schema;
pub mod scratch;
pub mod sql;
pub mod verify;
pub mod version;

pub use error::Error;
pub use run::run;
