//! What a new user's first mistakes print: what went wrong, where, what to
//! do, in the user's words (no internal codes, no library text), exit 1.

use crate::support;

use support::cli::{Imlrecover, Output};

/// Text a user should never see in an error.
#[track_caller]
fn speaks_plainly(out: &Output) {
    out.code(1);
    for leak in [
        "imlrecover::",
        "recipe::",
        "(os error",
        "expected value at line",
        "panicked",
    ] {
        assert!(!out.stderr.contains(leak), "{leak:?} in:\n{}", out.stderr);
    }
}

#[test]
fn a_missing_recipe_is_one_plain_error() {
    let out = Imlrecover::new()
        .args(["validate", "-r", "no-such-recipe.hcl"])
        .run();
    speaks_plainly(&out);
    out.stderr_has("cannot read recipe no-such-recipe.hcl: No such file or directory")
        .stderr_has("help: pass the recipe with -r FILE; the shipped ones are in plans/");
    assert!(
        !out.stderr.contains("each problem is listed below") && !out.stderr.contains("1 error"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_var_file_is_one_plain_error() {
    let out = Imlrecover::new()
        .args([
            "validate",
            "-r",
            "plans/iml-manager.hcl",
            "--var-file",
            "site.vars",
        ])
        .run();
    speaks_plainly(&out);
    out.stderr_has("cannot read --var-file site.vars: No such file or directory")
        .stderr_has("help: --var-file names a file of `name = value` lines");
    assert!(
        !out.stderr.contains("each problem is listed below"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_root_names_the_root_without_an_internal_code() {
    let out = Imlrecover::new()
        .args(["plan", "-r", "plans/iml-manager.hcl"])
        .args([
            "--root",
            "/nonexistent/root",
            "--bundle",
            "/nonexistent/bundle",
        ])
        .run();
    speaks_plainly(&out);
    out.stderr_has("the root directory /nonexistent/root does not exist");
}

#[test]
fn show_on_a_file_that_is_not_a_plan_says_so() {
    let out = Imlrecover::new().args(["show", "README.md"]).run();
    speaks_plainly(&out);
    out.stderr_has("README.md is not a saved plan: it is not JSON")
        .stderr_has("`imlrecover plan … --out PLANFILE` writes");
    let out = Imlrecover::new().args(["show", "no-such.plan"]).run();
    speaks_plainly(&out);
    out.stderr_has("cannot read the plan file no-such.plan: No such file or directory")
        .stderr_has("`imlrecover plan … --out PLANFILE` writes");
}

#[test]
fn bare_apply_shows_both_ways_it_is_used() {
    let out = Imlrecover::new().arg("apply").run();
    out.code(1)
        .stderr_has("<PLANFILE|--recipe <RECIPE>>")
        .stderr_has("imlrecover apply -r RECIPE --root DIR --bundle BUNDLE")
        .stderr_has("imlrecover apply PLANFILE");
    assert!(
        !out.stderr
            .contains("apply --recipe <RECIPE> --bundle <BUNDLE> [PLANFILE]"),
        "{}",
        out.stderr
    );
}

#[test]
fn age_identity_is_offered_only_where_bundles_are_read() {
    for cmd in ["verify", "plan", "apply", "audit", "pull"] {
        Imlrecover::new()
            .args([cmd, "--help"])
            .run()
            .code(0)
            .stdout_has("--age-identity <FILE>");
    }
    for cmd in ["validate", "graph", "demo", "backup", "push", "show"] {
        let help = Imlrecover::new().args([cmd, "--help"]).run();
        help.code(0);
        assert!(
            !help.stdout.contains("age-identity"),
            "{cmd}:\n{}",
            help.stdout
        );
    }
    Imlrecover::new()
        .args([
            "validate",
            "-r",
            "plans/iml-manager.hcl",
            "--age-identity",
            "key.txt",
        ])
        .run()
        .code(1)
        .stderr_has("unexpected argument '--age-identity'");
}
