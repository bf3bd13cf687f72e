//! What a release promises beside the code: one version everywhere (Cargo.toml, `--version`,
//! the wheel's metadata, the changelog), and the README's install commands.

use std::path::Path;

fn read(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap()
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn version_prints_the_version_of_cargo_toml() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aifp-migrate"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("aifp-migrate {VERSION}\n")
    );
}

#[test]
fn the_wheel_takes_its_version_and_binary_from_cargo_toml() {
    let py = read("pyproject.toml");
    let project = py
        .split("[project]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap();
    assert!(project.contains("name = \"aifp-migrate\""), "{project}");
    assert!(project.contains("dynamic = [\"version\"]"), "{project}");
    assert!(
        !project.lines().any(|l| l.starts_with("version")),
        "pyproject.toml sets a version of its own: {project}"
    );
    assert!(py.contains("build-backend = \"maturin\""));
    assert!(py.contains("bindings = \"bin\""));
}

#[test]
fn the_changelog_opens_with_this_version() {
    let log = read("CHANGELOG.md");
    let first = log
        .lines()
        .find(|l| l.starts_with("## [") && !l.starts_with("## [Unreleased]"))
        .unwrap();
    assert!(
        first.starts_with(&format!("## [{VERSION}] - ")),
        "CHANGELOG.md's newest release is {first:?}, Cargo.toml says {VERSION}"
    );
}

#[test]
fn the_readme_opens_with_every_install_channel_then_run_and_test() {
    let readme = read("README.md");
    let at = |needle: &str| {
        readme
            .find(needle)
            .unwrap_or_else(|| panic!("README.md lacks {needle:?}"))
    };
    let installs = [
        "pip install aifp-migrate",
        "uv tool install aifp-migrate",
        "pipx install aifp-migrate",
        "cargo install --locked aifp-migrate",
        "cargo install --locked --path .",
    ]
    .map(at);
    let run = at("cargo run --release -- --all");
    let test = at("cargo test");
    assert!(installs.iter().all(|&i| i < run && run < test));
    assert!(
        readme[..run].matches("\n## ").count() == 0,
        "the install commands and the two commands come before the first section"
    );
}

#[test]
fn the_license_file_is_the_license_the_metadata_declares_and_ships_with_the_crate() {
    let cargo = read("Cargo.toml");
    assert!(
        cargo.contains("license = \"MIT\""),
        "Cargo.toml declares another license"
    );
    assert!(
        read("pyproject.toml").contains("license = { text = \"MIT\" }"),
        "the wheel declares another license"
    );
    let include = cargo
        .lines()
        .find(|l| l.starts_with("include = "))
        .expect("Cargo.toml lists what the crate ships");
    assert!(include.contains("\"/LICENSE\""), "{include}");
    let license = read("LICENSE");
    assert!(license.starts_with("MIT License\n"), "{license}");
    assert!(license.contains("THE SOFTWARE IS PROVIDED \"AS IS\""));
}
