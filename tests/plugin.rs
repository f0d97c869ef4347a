//! A provider plugs in with one registration line: the `memory` provider
//! (`providers/memory`, registered in `syncfabric::remote::registry()` behind the
//! library's `memory` feature, which only this workspace's tests turn on) is listed by
//! the CLI's help and opened by `remote add` and `remote check`, with no CLI code
//! knowing it.

mod common;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_provider_registered_in_one_line_is_listed_added_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let cli = common::Dev::new(tmp.path(), "cli");
    let help = cli.cmd(&["remote", "add", "--help"]).output().unwrap();
    let help = text(&help);
    assert!(help.contains("memory:/scratch"), "{help}");
    assert!(help.contains("a store in this process's memory"), "{help}");

    cli.run(&["vault", "create", "--name", "P", "--kdf-iter", "1000"]);
    let add = cli
        .cmd(&["remote", "add", "m", "memory:/plugin"])
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", text(&add));
    let list = cli.cmd(&["remote", "list"]).output().unwrap();
    assert!(text(&list).contains("memory:/plugin"), "{}", text(&list));

    let check = cli.cmd(&["remote", "check", "m"]).output().unwrap();
    let out = text(&check);
    assert!(check.status.success(), "{out}");
    for b in syncfabric_conformance::BEHAVIOURS {
        assert!(out.contains(&format!("PASS {b}")), "{b}: {out}");
    }
    assert!(out.contains("commits: truthful"), "{out}");
}
