mod common;
use common::*;

#[test]
fn harness_runs_the_binary() {
    let env = Env::new();
    env.init_all();
    env.run(&["--check"]).expect(3);
}
