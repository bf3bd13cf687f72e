//! Rebuild when the bundled migration sets change: they are embedded with include_dir.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
