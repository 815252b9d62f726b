//! `p2p-exporter simulate` as the node team runs it.

use std::process::Command;

fn simulate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_p2p-exporter"))
        .arg("simulate")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn dup_storm_on_every_design_gives_json_and_a_self_contained_html_report() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.html");
    let output = simulate(&[
        "--scenario",
        "dup-storm",
        "--design",
        "all",
        "--duration",
        "20s",
        "--json",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    // Not a terminal: no progress bar.
    assert!(output.stderr.is_empty(), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let scenario = &json["scenarios"][0];
    assert_eq!(scenario["scenario"], "dup-storm");
    let designs: Vec<&str> = scenario["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(
        designs,
        [
            "broadcast-2048",
            "broadcast-4096",
            "broadcast-8192",
            "dedup",
            "segmented",
            "sharded",
            "actor",
            "zero-copy"
        ]
    );
    assert_eq!(scenario["baseline"]["verdict"], "deduplicate");
    assert_eq!(
        scenario["under_1pct_lag"],
        serde_json::json!(["dedup", "sharded", "actor"])
    );
    let dedup = &scenario["runs"][3];
    assert!(dedup["inv_dropped"].as_u64().unwrap() > 0);
    assert_eq!(dedup["events_lost"], 0);

    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<svg") && html.contains("<polyline"));
    for external in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(external), "{external}");
    }
}

#[test]
fn an_unknown_name_is_one_line_listing_the_valid_ones_and_exit_2() {
    for (flag, name, valid) in [
        ("--scenario", "dupstorm", "dup-storm"),
        ("--design", "broadcast", "zero-copy"),
    ] {
        let output = simulate(&[flag, name]);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(valid), "{stderr}");
    }
}

#[test]
fn steady_overload_says_no_channel_size_fixes_it_and_the_figures_are_the_nodes() {
    let output = simulate(&[
        "--scenario",
        "steady-overload",
        "--design",
        "broadcast-2048",
        "--duration",
        "20s",
    ]);
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8(output.stdout).unwrap();
    let line = |prefix: &str| {
        table
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {table}"))
            .to_owned()
    };
    let size = line("channel size: ");
    assert!(
        size.starts_with("channel size: steady overload: ")
            && size.ends_with("no channel size fixes it"),
        "{size}"
    );
    let memory = line("figures: an event is ");
    assert!(
        memory.starts_with(
            "figures: an event is 184B, a broadcast slot 208B; memory, fixed slots plus peak held payload, against broadcast-2048: broadcast-2048 2048 x 208B = 416.0KiB fixed"
        ),
        "{memory}"
    );
    let shares = line("figures: deduplication keeps ");
    assert!(
        shares.ends_with("with 1 subscriber(s) shared bodies save 0.00% of payload memory"),
        "{shares}"
    );
}
