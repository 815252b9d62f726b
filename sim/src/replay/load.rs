//! Reading a recording file: the header checked, every line parsed, then converted into what a
//! replay sends into a design.

use std::path::Path;

use p2p_recording::{Arrival, Header, Source};

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
    let contents = p2p_recording::read(path).map_err(|e| e.to_string())?;
    let header = contents.header;
    let lines_read: Vec<(usize, u64, Arrival)> = contents
        .arrivals
        .into_iter()
        .map(|(line, t, arrival)| (usize::try_from(line).unwrap_or(usize::MAX), t, arrival))
        .collect();
    let last = lines_read.last().map_or(0, |(_, t, _)| *t);
    let end = contents.end.max(last);
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
