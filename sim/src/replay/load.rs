//! Reading a recording file: the header checked, every line parsed, then converted into what a
//! replay sends into a design.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use p2p_recording::{Arrival, Header, Line, Source, FORMAT, VERSION};

use super::convert::{embedded_events, peak_peers, tap_events, Event};

/// A recording read whole and checked.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub header: Header,
    /// (nanoseconds since the recording began, event), in arrival order.
    pub events: Vec<(u64, Event)>,
    /// When recording stopped.
    pub end: u64,
    /// Peers a replayed design accepts: the header's, else one more than the most ever connected.
    pub max_peers: usize,
    /// Tap recordings: the worst subscriber's lag ratio as the node itself reported it.
    pub recorded_lag: Option<f64>,
}

/// Reads a recording; the error is one line naming the file and what is wrong with it.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let shown = path.display();
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    if !gzip {
        return Err(format!(
            "{shown} is not a recording: it is not gzip-compressed"
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut lines = BufReader::new(GzDecoder::new(file)).lines();
    let read_error = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            format!("{shown} is truncated: its gzip stream ends early (was the recorder killed before it finished?)")
        } else {
            format!("{shown} is not a readable recording: {e}")
        }
    };
    let first = match lines.next() {
        Some(line) => line.map_err(read_error)?,
        None => return Err(format!("{shown} is empty: no recording header")),
    };
    let header = parse_header(&first).map_err(|e| format!("{shown}: {e}"))?;
    let mut lines_read = Vec::new();
    let mut end = None;
    for (index, line) in lines.enumerate() {
        let line = line.map_err(read_error)?;
        let parsed: Line = serde_json::from_str(&line)
            .map_err(|e| format!("{shown} line {}: not a recording line: {e}", index + 2))?;
        match parsed.arrival {
            Arrival::End => end = Some(parsed.t),
            arrival => lines_read.push((index + 2, parsed.t, arrival)),
        }
    }
    let last = lines_read.last().map_or(0, |(_, t, _)| *t);
    let end = end.unwrap_or(last).max(last);
    let (events, recorded_lag, capacity) = match header.source {
        Source::Embedded => (
            embedded_events(lines_read).map_err(|e| format!("{shown} {e}"))?,
            None,
            None,
        ),
        Source::Tap => {
            let converted = tap_events(lines_read).map_err(|e| format!("{shown} {e}"))?;
            (converted.events, converted.recorded_lag, converted.capacity)
        }
    };
    let mut header = header;
    header.capacity = header.capacity.or(capacity);
    let max_peers = match header.max_peers {
        Some(max) => usize::try_from(max).unwrap_or(usize::MAX),
        None => peak_peers(&events) + 1,
    };
    Ok(Loaded {
        header,
        events,
        end,
        max_peers,
        recorded_lag,
    })
}

fn parse_header(line: &str) -> Result<Header, String> {
    let value: serde_json::Value = serde_json::from_str(line)
        .map_err(|_| "not a recording: the first line is not JSON".to_owned())?;
    if value["format"] != FORMAT {
        return Err(format!(
            "not a recording: the first line is not a {FORMAT} header"
        ));
    }
    match value["v"].as_u64() {
        Some(v) if (1..=u64::from(VERSION)).contains(&v) => {}
        Some(v) => {
            return Err(format!(
                "recording format version {v} is not supported (this build reads 1 to {VERSION}): upgrade the exporter"
            ))
        }
        None => return Err("not a recording: the header has no version".to_owned()),
    }
    serde_json::from_value(value).map_err(|e| format!("bad recording header: {e}"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::replay::write_gz;

    #[test]
    fn bad_files_fail_with_one_line_saying_why() {
        let dir = std::env::temp_dir().join(format!("p2p-replay-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = r#"{"format":"p2p-recording","v":1,"source":"embedded"}"#;
        let plain = dir.join("plain");
        std::fs::write(&plain, format!("{header}\n")).unwrap();
        let newer = dir.join("newer");
        write_gz(
            &newer,
            r#"{"format":"p2p-recording","v":2,"source":"embedded"}"#,
        );
        let other = dir.join("other");
        write_gz(&other, "{\"hello\":1}\n");
        let garbage = dir.join("garbage");
        write_gz(&garbage, &format!("{header}\nnot json\n"));
        let truncated = dir.join("truncated");
        let mut full = Vec::new();
        {
            let mut out = flate2::write::GzEncoder::new(&mut full, flate2::Compression::fast());
            writeln!(out, "{header}").unwrap();
            for t in 0..2000 {
                writeln!(out, "{{\"t\":{t},\"kind\":\"register\",\"inbound\":true}}").unwrap();
            }
            out.finish().unwrap();
        }
        std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
        for (path, expected) in [
            (dir.join("missing"), "cannot read"),
            (plain, "not gzip-compressed"),
            (newer, "version 2 is not supported"),
            (other, "not a p2p-recording header"),
            (garbage, "line 2: not a recording line"),
            (truncated, "truncated"),
        ] {
            let error = load(&path).unwrap_err();
            assert!(error.contains(expected), "{}: {error}", path.display());
            assert!(!error.contains('\n'), "{error}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
