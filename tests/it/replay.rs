//! `--record` and `replay` as the node team runs them: a scenario recording replays to the
//! scenario's own figures, live recordings (embedded and tap) replay, bad files fail in one line.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{run_measured, wait_for, Exporter};

fn exporter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_p2p-exporter"))
        .args(args)
        .output()
        .unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn replay(file: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["replay", file.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    json(&exporter(&args))
}

fn run<'a>(report: &'a serde_json::Value, design: &str) -> &'a serde_json::Value {
    report["scenarios"][0]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["strategy"] == design)
        .unwrap_or_else(|| panic!("no {design} run in {report}"))
}

/// Sends SIGTERM and waits for a clean exit: the recording is finished on the way out.
fn stop(mut exporter: Exporter) {
    let status = exporter.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_scenario_recording_replays_to_the_scenarios_own_figures_and_names_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dup-storm.ndjson.gz");
    let simulated = json(&exporter(&[
        "simulate",
        "--scenario",
        "dup-storm",
        "--design",
        "broadcast-2048",
        "--duration",
        "10s",
        "--json",
        "--record",
        file.to_str().unwrap(),
    ]));
    let original = run(&simulated, "broadcast-2048");
    assert!(original["events_lost"].as_u64().unwrap() > 0, "{original}");

    let replayed = replay(&file, &["--design", "broadcast-2048"]);
    let again = run(&replayed, "broadcast-2048");
    // The run is deterministic and the recording holds every call: exact equality.
    for field in [
        "lag_ratio",
        "events_lost",
        "events_received",
        "events_sent",
        "duplicate_ratio",
        "blocks_accepted",
        "average_peers",
    ] {
        assert_eq!(again[field], original[field], "{field}");
    }
    assert_eq!(again, original);
    assert_eq!(
        replayed["scenarios"][0]["channel_size"],
        simulated["scenarios"][0]["channel_size"]
    );

    let all = replay(&file, &["--design", "all"]);
    let scenario = &all["scenarios"][0];
    assert_eq!(scenario["baseline"]["verdict"], "deduplicate");
    let under: Vec<&str> = scenario["under_1pct_lag"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(under.contains(&"dedup"), "{under:?}");
    assert_eq!(scenario["runs"].as_array().unwrap().len(), 8);
    assert!(all["seed"].is_null());
}

#[test]
fn a_live_embedded_recording_replays_with_the_lag_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("live.ndjson.gz");
    // 40 peers at 35 messages/s against 5 ms per message: the consumer keeps up with a seventh of
    // the traffic, so the 2048 channel overflows within two seconds.
    let live = Exporter::start(&[
        "--peers",
        "40",
        "--message-cost",
        "5ms",
        "--record",
        file.to_str().unwrap(),
    ]);
    wait_for("live lag", Duration::from_secs(60), || {
        (live.value("p2p_event_channel_lag_total{subscriber=\"consumer\"}") > 0.0).then_some(())
    });
    // As much traffic again after the first lag, so the recording holds the overload and not
    // only its onset (the live consumer's timer rounding lags a little earlier than the model).
    let written = live.value("p2p_recording_written_total");
    assert!(written > 0.0);
    wait_for("twice the traffic", Duration::from_secs(60), || {
        (live.value("p2p_recording_written_total") >= 2.0 * written).then_some(())
    });
    assert_eq!(live.value("p2p_recording_dropped_total"), 0.0);
    stop(live);

    let replayed = replay(&file, &["--design", "broadcast-2048"]);
    let scenario = &replayed["scenarios"][0];
    assert!(
        scenario["summary"]
            .as_str()
            .unwrap()
            .contains("embedded recording"),
        "{scenario}"
    );
    let baseline = run(&replayed, "broadcast-2048");
    assert!(baseline["lag_ratio"].as_f64().unwrap() > 0.0, "{baseline}");
    assert!(baseline["events_lost"].as_u64().unwrap() > 0, "{baseline}");
}

#[test]
fn a_tap_recording_replays_without_the_token_and_says_it_is_approximate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tap.ndjson.gz");
    let socket = dir.path().join("tap.sock");
    let sidecar = Exporter::start(&[
        "--source",
        "tap",
        "--tap-socket",
        socket.to_str().unwrap(),
        "--tap-token",
        "s3cret-token",
        "--record",
        file.to_str().unwrap(),
    ]);
    let mut node = UnixStream::connect(&socket).unwrap();
    let mut frames = Vec::new();
    let hello = p2p_tap::protocol::Hello {
        v: p2p_tap::protocol::VERSION,
        session: 1,
        client: "test".into(),
        token: Some("s3cret-token".into()),
    };
    p2p_tap::protocol::write_json_frame(&mut frames, p2p_tap::protocol::FRAME_HELLO, &hello);
    // The snapshot that says four peers connected before the burst.
    let tap = p2p_tap::Tap::disabled();
    for _ in 0..4 {
        tap.peer_connected(p2p_observe::Direction::Inbound);
    }
    p2p_tap::protocol::write_json_frame(
        &mut frames,
        p2p_tap::protocol::FRAME_SNAPSHOT,
        &tap.snapshot(),
    );
    // 3000 new invs at once: more than the 2048 channel holds before the consumer takes any.
    let mut journal = Vec::new();
    for i in 0..3000u32 {
        let mut hash = [0u8; 32];
        hash[..4].copy_from_slice(&i.to_be_bytes());
        p2p_tap::protocol::encode_journal_entry(
            &mut journal,
            i / 1000,
            [(p2p_observe::InvType::Transaction, hash)].into_iter(),
        );
    }
    p2p_tap::protocol::write_frame(&mut frames, p2p_tap::protocol::FRAME_JOURNAL, &journal);
    node.write_all(&frames).unwrap();
    wait_for("every frame", Duration::from_secs(30), || {
        (sidecar.value("p2p_tap_records_total") == 2.0).then_some(())
    });
    wait_for("every arrival written", Duration::from_secs(30), || {
        (sidecar.value("p2p_recording_written_total") == 3004.0).then_some(())
    });
    drop(node);
    stop(sidecar);

    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&file).unwrap()),
        &mut text,
    )
    .unwrap();
    assert!(!text.contains("s3cret-token"));
    assert!(text.starts_with(r#"{"format":"p2p-recording","v":1,"source":"tap""#));

    // 1 ms per message: the consumer takes 10 a tick while the burst arrives in a few ticks.
    let replayed = replay(
        &file,
        &[
            "--design",
            "broadcast-2048,sharded",
            "--message-cost",
            "1ms",
        ],
    );
    let summary = replayed["scenarios"][0]["summary"].as_str().unwrap();
    assert!(
        summary.contains("sharded and actor results are approximate"),
        "{summary}"
    );
    let baseline = run(&replayed, "broadcast-2048");
    // Four connects (the hello's peers) and every message. How many are skipped depends on how
    // the socket reads split the burst over ticks.
    assert_eq!(baseline["events_sent"], 3004, "{baseline}");
    let lost = baseline["events_lost"].as_u64().unwrap();
    let received = baseline["events_received"].as_u64().unwrap();
    assert!(lost > 0 && lost + received <= 3004, "{baseline}");
}

#[test]
fn bad_recordings_fail_in_one_line_with_exit_1_and_bad_usage_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let write_gz = |name: &str, text: &str| {
        let path = dir.path().join(name);
        let mut out = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        out.write_all(text.as_bytes()).unwrap();
        out.finish().unwrap();
        path
    };
    let plain = dir.path().join("plain.ndjson");
    std::fs::write(&plain, "{\"format\":\"p2p-recording\",\"v\":1}\n").unwrap();
    let newer = write_gz(
        "newer.gz",
        "{\"format\":\"p2p-recording\",\"v\":99,\"source\":\"embedded\"}\n",
    );
    let corrupt = write_gz(
        "corrupt.gz",
        "{\"format\":\"p2p-recording\",\"v\":1,\"source\":\"embedded\"}\n{\"t\":1,\"kind\":\"nonsense\"}\n",
    );
    let full = std::fs::read(write_gz(
        "full.gz",
        &(0..5000)
            .map(|t| format!("{{\"t\":{t},\"kind\":\"register\",\"inbound\":true}}\n"))
            .fold(
                "{\"format\":\"p2p-recording\",\"v\":1,\"source\":\"embedded\"}\n".to_owned(),
                |all, line| all + &line,
            ),
    ))
    .unwrap();
    let truncated = dir.path().join("truncated.gz");
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let header = "{\"format\":\"p2p-recording\",\"v\":1,\"source\":\"embedded\"}\n";
    let register = "{\"t\":1,\"kind\":\"register\",\"inbound\":true}\n";
    let end = "{\"t\":2,\"kind\":\"end\"}\n";
    let header_only = write_gz("header-only.gz", header);
    let no_end = write_gz("no-end.gz", &format!("{header}{register}{register}"));
    let whole = std::fs::read(write_gz("whole.gz", &format!("{header}{register}{end}"))).unwrap();
    // `cat whole.gz whole.gz`: both gzip members are read, and the second recording is refused.
    let twice = dir.path().join("twice.gz");
    std::fs::write(&twice, [whole.clone(), whole.clone()].concat()).unwrap();
    let garbage = dir.path().join("garbage.gz");
    std::fs::write(&garbage, [whole, b"not gzip at all".to_vec()].concat()).unwrap();
    let after_end = write_gz("after-end.gz", &format!("{header}{end}{register}"));
    let directory = dir.path().join("a-directory.gz");
    std::fs::create_dir(&directory).unwrap();
    for (path, expected) in [
        (dir.path().join("missing.gz"), "cannot read"),
        (plain, "not gzip-compressed"),
        (newer, "version 99 is not supported"),
        (corrupt, "line 2: not a recording line"),
        (truncated, "is truncated: its gzip stream ends early"),
        (header_only, "holds only a header"),
        (no_end, "is truncated: no end line after 3 lines"),
        (
            twice,
            "line 4: a second recording starts after the end line",
        ),
        (garbage, "15 trailing bytes after its gzip stream"),
        (after_end, "line 3: trailing data after the end line"),
        (directory, "is a directory"),
    ] {
        let output = exporter(&["replay", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    for args in [
        vec!["replay", "x.gz", "--design", "broadcast"],
        vec!["replay"],
        vec![
            "simulate",
            "--scenario",
            "dup-storm",
            "--design",
            "all",
            "--record",
            "x.gz",
        ],
    ] {
        let output = exporter(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert_eq!(String::from_utf8(output.stderr).unwrap().lines().count(), 1);
    }
}

/// One gzip member whose text is `prefix` and then `mib` MiB of `a` with no newline: one line of
/// that length, in about a thousandth of its size. One MiB is compressed and its deflate blocks
/// repeated: they end byte-aligned (a sync flush) and refer only to the `a`s before them, so the
/// file costs one MiB of compression however long the line.
fn gzip_with_a_long_line(prefix: &str, mib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, Crc, FlushCompress, Status};
    let chunk = vec![b'a'; 1 << 20];
    let mut deflate = Compress::new(Compression::best(), false);
    let mut blocks = |input: &[u8], flush: FlushCompress| {
        let mut out = Vec::with_capacity(input.len() / 100 + 4096);
        let start = deflate.total_in();
        loop {
            if out.capacity() - out.len() < 4096 {
                out.reserve(1 << 16);
            }
            let at = usize::try_from(deflate.total_in() - start).unwrap();
            let status = deflate.compress_vec(&input[at..], &mut out, flush).unwrap();
            let done = usize::try_from(deflate.total_in() - start).unwrap() == input.len();
            // Finished once the input is in and the output did not fill up.
            if status == Status::StreamEnd
                || (done && flush == FlushCompress::Sync && out.capacity() > out.len())
            {
                return out;
            }
        }
    };
    let first = [prefix.as_bytes(), &chunk].concat();
    let head = blocks(&first, FlushCompress::Sync);
    let repeated = blocks(&chunk, FlushCompress::Sync);
    let tail = blocks(&[], FlushCompress::Finish);
    let mut crc = Crc::new();
    crc.update(&first);
    let mut chunk_crc = Crc::new();
    chunk_crc.update(&chunk);
    let mut file = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    file.extend_from_slice(&head);
    for _ in 1..mib {
        file.extend_from_slice(&repeated);
        crc.combine(&chunk_crc);
    }
    file.extend_from_slice(&tail);
    file.extend_from_slice(&crc.sum().to_le_bytes());
    file.extend_from_slice(&crc.amount().to_le_bytes());
    file
}

#[test]
fn a_line_far_over_the_limit_fails_in_one_line_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long-line.ndjson.gz");
    let header = "{\"format\":\"p2p-recording\",\"v\":1,\"source\":\"embedded\"}\n";
    // A 384 MiB line in a file of well under a megabyte.
    let bytes = gzip_with_a_long_line(header, 384);
    assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
    std::fs::write(&file, &bytes).unwrap();

    let limit = p2p_recording::MAX_LINE_BYTES as u64;
    let run = run_measured(&["replay", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("line 2: longer than {limit} bytes")),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // The reader holds at most the limit of the line; the rest is the binary itself.
    let bound = limit + (64 << 20);
    eprintln!(
        "peak RSS {:.1} MiB, bound {} MiB",
        run.max_rss as f64 / f64::from(1 << 20),
        bound >> 20
    );
    assert!(
        run.max_rss < bound,
        "peak RSS {} MiB, bound {} MiB",
        run.max_rss >> 20,
        bound >> 20
    );
}
