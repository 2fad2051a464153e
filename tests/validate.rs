//! `imlrecover validate` and `graph` on the fixtures: one recipe per error
//! class, each asserting the message, the file:line:column and the exit code;
//! the whole rendered diagnostic is snapshot-tested so a reader can see it.

use crate::support;

use support::cli::{fixtures, Imlrecover, Output};

fn validate(recipe: &str) -> Output {
    Imlrecover::new()
        .current_dir(fixtures().join("recipes"))
        .args(["validate", "-r", recipe])
        .run()
}

/// Runs a broken recipe: exit 1, nothing on stdout, the location and
/// message on stderr; returns stderr for the snapshot.
#[track_caller]
fn invalid(recipe: &str, location: &str, message: &str) -> String {
    let out = validate(recipe);
    out.code(1).stderr_has(location).stderr_has(message);
    assert_eq!(out.stdout, "", "a failed validate prints nothing on stdout");
    out.stderr
}

#[test]
fn syntax_error() {
    let err = invalid(
        "invalid/syntax.hcl",
        "invalid/syntax.hcl:2:3",
        "HCL syntax error",
    );
    insta::assert_snapshot!(err);
}

#[test]
fn unknown_block_type_suggests_the_right_one() {
    let err = invalid(
        "invalid/unknown_block.hcl",
        "invalid/unknown_block.hcl:1:1",
        "unknown block type `servce`",
    );
    assert!(err.contains("did you mean `service`?"));
    insta::assert_snapshot!(err);
}

#[test]
fn misspelt_attribute_suggests_the_right_one() {
    let err = invalid(
        "invalid/unknown_attribute.hcl",
        "invalid/unknown_attribute.hcl:3:3",
        "unknown attribute `owenr` in `file.ntp_conf`",
    );
    assert!(err.contains("did you mean `owner`?"));
    insta::assert_snapshot!(err);
}

#[test]
fn missing_required_attribute() {
    let err = invalid(
        "invalid/missing_attribute.hcl",
        "invalid/missing_attribute.hcl:1:1",
        "`cert.manager` is missing the required attribute `key`",
    );
    insta::assert_snapshot!(err);
}

#[test]
fn mode_as_a_number_is_a_type_error() {
    let err = invalid(
        "invalid/wrong_type.hcl",
        "invalid/wrong_type.hcl:3:10",
        "`mode` must be an octal string such as \"0644\", found number",
    );
    assert!(err.contains("quote it: mode = \"0644\""));
    insta::assert_snapshot!(err);
}

#[test]
fn mode_with_a_non_octal_digit() {
    let err = invalid(
        "invalid/invalid_mode.hcl",
        "invalid/invalid_mode.hcl:3:10",
        "`0800` is not an octal file mode",
    );
    insta::assert_snapshot!(err);
}

#[test]
fn duplicate_address_points_at_both() {
    let err = invalid(
        "invalid/duplicate.hcl",
        "invalid/duplicate.hcl:5:1",
        "duplicate resource address `service.httpd`",
    );
    assert!(err.contains("first declared here"));
    insta::assert_snapshot!(err);
}

#[test]
fn reference_to_an_undeclared_resource() {
    let err = invalid(
        "invalid/unknown_reference.hcl",
        "invalid/unknown_reference.hcl:7:16",
        "reference to undeclared resource `service.http`",
    );
    assert!(err.contains("did you mean `service.httpd`?"));
    insta::assert_snapshot!(err);
}

#[test]
fn reference_to_an_undeclared_variable() {
    let err = invalid(
        "invalid/unknown_variable.hcl",
        "invalid/unknown_variable.hcl:7:11",
        "reference to undeclared variable `var.agent`",
    );
    assert!(err.contains("did you mean `agents`?"));
    insta::assert_snapshot!(err);
}

#[test]
fn notify_must_name_a_service() {
    let err = invalid(
        "invalid/bad_notify.hcl",
        "invalid/bad_notify.hcl:7:13",
        "`notify` must name a service or remote_service, but `file.hosts` is a file",
    );
    insta::assert_snapshot!(err);
}

#[test]
fn cycle_names_every_member() {
    let err = invalid(
        "invalid/cycle.hcl",
        "invalid/cycle.hcl:1:1",
        "dependency cycle between 3 resources",
    );
    for member in [
        "service.rabbitmq_server",
        "service.httpd",
        "service.chroma_supervisor",
    ] {
        assert!(
            err.contains(&format!("{member} is part of the cycle")),
            "{member} not named:\n{err}"
        );
    }
    assert!(
        !err.contains("service.ntpd"),
        "ntpd is not in the cycle:\n{err}"
    );
    insta::assert_snapshot!(err);
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let err = invalid(
        "invalid/many.hcl",
        "4 errors in recipe invalid/many.hcl",
        "invalid/many.hcl:2:10",
    );
    for needle in [
        "`path` must be an absolute path without `..`, found `etc/ntp.conf`",
        "invalid/many.hcl:6:11: unknown service state `runing`",
        "invalid/many.hcl:10:13: `command` must not be empty",
        "invalid/many.hcl:11:13: `timeout` is not a duration",
    ] {
        assert!(err.contains(needle), "missing {needle:?}:\n{err}");
    }
    insta::assert_snapshot!(err);
}

#[test]
fn a_variable_without_a_value_is_an_error_until_set() {
    let err = invalid(
        "invalid/no_value.hcl",
        "invalid/no_value.hcl:1:1",
        "variable `agents` has no value",
    );
    assert!(
        err.contains("1 error in recipe"),
        "the reference to it is not a second error:\n{err}"
    );

    let out = validate_with(&["--var", "agents=[\"oss1\",\"oss2\"]"]);
    out.code(0).stdout_has("1 resource, 1 variable, 1 edge");

    let out = validate_with(&["--var-file", "valid/agents.vars.hcl"]);
    out.code(0);
}

fn validate_with(extra: &[&str]) -> Output {
    Imlrecover::new()
        .current_dir(fixtures().join("recipes"))
        .args(["validate", "-r", "valid/agents.hcl"])
        .args(extra)
        .run()
}

#[test]
fn unknown_var_on_the_command_line_is_named() {
    let out = validate_with(&["--var", "agent=oss1"]);
    out.code(1)
        .stderr_has("--var agent: the recipe declares no variable `agent`")
        .stderr_has("did you mean `agents`?");
}

#[test]
fn var_of_the_wrong_type_is_reported_where_it_is_used() {
    let out = validate_with(&["--var", "agents=oss1"]);
    out.code(1)
        .stderr_has("`hosts` must be a list of strings, found string");
}

#[test]
fn malformed_var_and_missing_files_are_clear_errors() {
    validate_with(&["--var", "agents"])
        .code(1)
        .stderr_has("is not NAME=VALUE");
    validate_with(&["--var-file", "nope.hcl"])
        .code(1)
        .stderr_has("cannot read --var-file nope.hcl");
    validate("missing.hcl")
        .code(1)
        .stderr_has("cannot read recipe missing.hcl");
}

#[test]
fn shipped_plans_are_valid() {
    for (plan, counts) in [
        (
            "plans/iml-manager.hcl",
            "29 resources, 5 variables, 33 edges",
        ),
        (
            "plans/iml-manager-el7.hcl",
            "29 resources, 5 variables, 33 edges",
        ),
        (
            "plans/iml-manager-el7-5.1.hcl",
            "32 resources, 8 variables, 46 edges",
        ),
        (
            "plans/iml-manager-el7-6.1.hcl",
            "33 resources, 8 variables, 47 edges",
        ),
    ] {
        let out = Imlrecover::new().args(["validate", "-r", plan]).run();
        out.code(0).stdout_has(&format!("Valid. {plan}: {counts}"));
    }
}

#[test]
fn graph_is_dot_with_distinguishable_edge_kinds() {
    let out = Imlrecover::new()
        .args(["graph", "-r", "plans/iml-manager.hcl"])
        .run();
    out.code(0);
    let dot = &out.stdout;
    assert!(dot.starts_with("digraph imlrecover {"));
    for edge in [
        "\"file.ntp_conf\" -> \"service.ntpd\" [label = \"notify\", style = dashed",
        "\"database.chroma\" -> \"service.httpd\" [label = \"quiesce\", style = bold",
        "\"exec.installer\" -> \"cert.authority\" [label = \"depends_on\", style = solid",
        "\"cert.authority\" -> \"cert.manager\" [label = \"reference\", style = dotted",
        "\"var.agents\" -> \"remote_service.chroma_agent\" [label = \"reference\"",
    ] {
        assert!(dot.contains(edge), "missing edge {edge}\n{dot}");
    }
    // The real Graphviz accepts it.
    let mut dot_cmd = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("graphviz `dot` is installed by .ci/run");
    use std::io::Write;
    dot_cmd
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let svg = dot_cmd.wait_with_output().unwrap();
    assert!(svg.status.success());
    assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));
}

#[test]
fn broken_pipe_is_not_a_crash() {
    // `imlrecover graph | head -1`: the reader goes away early.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imlrecover"))
        .current_dir(support::cli::repo())
        .args(["graph", "-r", "plans/iml-manager.hcl"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn no_input_makes_it_panic() {
    // Every prefix of the shipped plan (cut mid-token, mid-string, mid-block)
    // is either valid or a diagnostic, never a crash.
    let text = std::fs::read_to_string(support::cli::repo().join("plans/iml-manager.hcl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.hcl");
    let cuts: Vec<usize> = (0..text.len())
        .step_by(97)
        .filter(|i| text.is_char_boundary(*i))
        .collect();
    for cut in cuts {
        std::fs::write(&path, &text[..cut]).unwrap();
        let out = Imlrecover::new().args(["validate", "-r"]).arg(&path).run();
        assert!(
            out.code == 0 || out.code == 1,
            "cut at {cut}: exit {}\n{}",
            out.code,
            out.stderr
        );
        assert!(
            !out.stderr.contains("panicked"),
            "cut at {cut}:\n{}",
            out.stderr
        );
    }
    for garbage in [
        "\u{0}\u{1}\u{2}",
        "}}}}",
        "file",
        "file \"x\" { path = \"/a\" } }",
        "a = ${",
        "x \"y\" \"z\" {}",
    ] {
        std::fs::write(&path, garbage).unwrap();
        let out = Imlrecover::new().args(["validate", "-r"]).arg(&path).run();
        assert_eq!(out.code, 1, "{garbage:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"));
    }
}

/// Runs imlrecover with stdout and stderr both on a pipe whose reader is
/// already gone (`… 2>&1 | head -1` after head exited).
fn run_into_closed_pipe(args: &[&str]) -> std::process::Output {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    std::process::Command::new(env!("CARGO_BIN_EXE_imlrecover"))
        .current_dir(support::cli::repo())
        .args(args)
        .stdout(write.try_clone().unwrap())
        .stderr(write)
        .output()
        .unwrap()
}

#[test]
fn closed_stderr_keeps_the_errors_exit_code() {
    // `validate … 2>&1 | head -1` and `verify BAD 2>&1 | head -1`: the error
    // cannot be printed, but the exit code is still the error's, not a panic's 101.
    for (args, code) in [
        (
            &[
                "validate",
                "-r",
                "plans/iml-manager.hcl",
                "--var",
                "pg_port=notaport",
            ][..],
            1,
        ),
        (&["verify", "/nonexistent/bundle"][..], 1),
        (&["validate", "-r", "plans/iml-manager.hcl"][..], 0),
    ] {
        let out = run_into_closed_pipe(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
    }
}
