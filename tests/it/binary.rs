//! The exporter binary as an operator runs it.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{require_tool, sample, wait_for, Exporter};

fn exporter_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_p2p-exporter"))
}

#[test]
fn the_default_run_serves_the_core_metrics_within_seconds() {
    let exporter = Exporter::start(&[]);
    let nonzero = [
        r#"p2p_events_sent_total{channel="events"}"#,
        r#"p2p_messages_total{type="inv"}"#,
        "p2p_inv_duplicate_messages_total",
        r#"p2p_events_received_total{subscriber="consumer"}"#,
    ];
    wait_for("the core counters to move", Duration::from_secs(30), || {
        let text = exporter.scrape();
        nonzero
            .iter()
            .all(|series| sample(&text, series).is_some_and(|v| v > 0.0))
            .then_some(())
    });
    let text = exporter.scrape();
    assert_eq!(
        sample(&text, r#"p2p_event_channel_capacity{channel="events"}"#),
        Some(2048.0)
    );
    assert_eq!(sample(&text, "p2p_peers"), Some(20.0));
    let (status, _) = crate::support::get(exporter.address, "/readyz");
    assert_eq!(status, 200);
}

#[test]
fn raising_the_consumer_cost_makes_the_lag_counter_grow() {
    let exporter = Exporter::start(&["--message-cost", "2ms", "--peers", "40"]);
    let lag = r#"p2p_event_channel_lag_total{subscriber="consumer"}"#;
    let first = wait_for("the consumer to lag", Duration::from_secs(60), || {
        Some(exporter.value(lag)).filter(|v| *v > 0.0)
    });
    wait_for("the lag to keep growing", Duration::from_secs(60), || {
        (exporter.value(lag) > first).then_some(())
    });
    let warned = wait_for("a lag warning in the log", Duration::from_secs(10), || {
        exporter
            .drain_log()
            .into_iter()
            .find(|line| line.contains("peer event loop lagged"))
    });
    assert!(warned.contains("\"skipped\""), "{warned}");
}

#[test]
fn scraped_metrics_pass_promtool_check_metrics() {
    let promtool = require_tool("promtool");
    let exporter = Exporter::start(&["--block-interval", "1s"]);
    wait_for("a block to be accepted", Duration::from_secs(30), || {
        (exporter.value("p2p_blocks_accepted_total") > 0.0).then_some(())
    });
    let text = exporter.scrape();
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{report}"
    );
    assert_eq!(report.trim(), "", "promtool reported problems");
}

#[test]
fn bad_flags_end_with_one_line_and_exit_code_2() {
    for args in [
        &["--no-such-flag"][..],
        &["--duplicate-ratio", "2"],
        &["--listen", "localhost"],
        &["--log-level", "loud=="],
        &["--peers", "180"],
    ] {
        let output = exporter_command().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    }
}

#[test]
fn an_address_in_use_ends_with_one_line_and_exit_code_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = exporter_command()
        .args(["--listen", &address, "--log-level", "error"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot listen on {address}: ")),
        "{stderr}"
    );
}

#[test]
fn help_names_every_knob_and_its_environment_variable() {
    let output = exporter_command().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, env) in [
        ("--listen", "P2P_EXPORTER_LISTEN"),
        ("--peers", "P2P_PEERS"),
        ("--rate", "P2P_RATE"),
        ("--block-cost", "P2P_BLOCK_COST"),
        ("--message-cost", "P2P_MESSAGE_COST"),
        ("--capacity", "P2P_CAPACITY"),
        ("--duplicate-ratio", "P2P_DUPLICATE_RATIO"),
        ("--log-format", "P2P_EXPORTER_LOG_FORMAT"),
    ] {
        assert!(
            help.contains(flag) && help.contains(env),
            "{flag} / {env} missing:\n{help}"
        );
    }
    assert!(help.contains("[default: 0.0.0.0:9730]"), "{help}");
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let mut exporter = Exporter::start(&[]);
    let exit = exporter.terminate();
    assert!(exit.success(), "{exit:?}");
    let log = exporter.drain_log().join("\n");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

fn decide(exporter: &Exporter) -> String {
    let output = exporter_command()
        .args(["decide", "--url", &format!("http://{}", exporter.address)])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn decide_prints_the_verdict_of_a_lagging_exporter() {
    // 35% duplicate inv and lag: the framework's first branch.
    let dup_heavy = Exporter::start(&["--message-cost", "2ms", "--peers", "40"]);
    // 10% duplicates, 40 peers, lag: the last branch.
    let plain = Exporter::start(&[
        "--message-cost",
        "2ms",
        "--peers",
        "40",
        "--duplicate-ratio",
        "0.1",
    ]);
    for exporter in [&dup_heavy, &plain] {
        wait_for("the consumer to lag", Duration::from_secs(60), || {
            let lag = exporter.value(r#"p2p_event_channel_lag_total{subscriber="consumer"}"#);
            (lag > 0.0).then_some(())
        });
    }
    let out = wait_for("a deduplicate verdict", Duration::from_secs(60), || {
        Some(decide(&dup_heavy)).filter(|out| out.starts_with("verdict: deduplicate\n"))
    });
    assert!(out.contains("lag ratio"), "{out}");
    let out = wait_for("a grow_channel verdict", Duration::from_secs(60), || {
        Some(decide(&plain)).filter(|out| out.starts_with("verdict: grow_channel\n"))
    });
    assert!(out.contains("grow EVENT_CHANNEL_SIZE"), "{out}");
}

#[test]
fn decide_against_nothing_is_a_one_line_error() {
    let unused = crate::support::free_port();
    let output = exporter_command()
        .args(["decide", "--url", &format!("http://127.0.0.1:{unused}")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot connect to http://127.0.0.1:"),
        "{stderr}"
    );
}
