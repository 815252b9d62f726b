//! The strict reader: a recording is read whole or refused with one line saying why.
//!
//! What it guarantees (docs/recording.md, "Reading a recording"):
//!
//! - No line longer than [`MAX_LINE_BYTES`] is ever held in memory: lines are read through a
//!   buffer capped at the limit, so a huge line in a small gzip costs at most the limit.
//! - Every gzip member is read, as `gzip -d` does; bytes after the last member that are not a
//!   gzip member are refused as trailing bytes.
//! - A recording ends with its `end` line: a file without one is truncated, and anything after it
//!   (more lines, a second recording appended with `cat a a`) is refused.
//! - A directory, an empty file, a file that is not gzip, a header-only file, a line too long or
//!   not a recording line: each its own [`Problem`], shown with the path and the line number.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::format::{Arrival, Header, Line, FORMAT, VERSION};
use gzip::{Counting, Members, TrailingBytes};

/// The longest line a recording may have after the header, newline excluded.
///
/// The longest line a writer produces is a `tap` line: an envelope of at most [`ENVELOPE_BYTES`]
/// around one record the tap source accepted, which is at most
/// [`p2p_tap::wire::MAX_LINE_BYTES`] (8 MiB). An embedded `message` line is bounded by the
/// protocol's inventory cap ([`p2p_tap::wire::MAX_ITEMS`] items of under 100 bytes: about
/// 4.9 MB). The limit is twice the tap record's bound, so every legal line fits with room to
/// spare, and a reader holds at most this much of one line.
pub const MAX_LINE_BYTES: usize = 2 * p2p_tap::wire::MAX_LINE_BYTES;

/// Bytes a writer puts around a tap record: `{"t":<u64>,"kind":"tap","record":` and `}`.
pub const ENVELOPE_BYTES: usize = 64;

/// The longest line a writer produces (see [`MAX_LINE_BYTES`]).
pub const LONGEST_WRITTEN_LINE: usize = p2p_tap::wire::MAX_LINE_BYTES + ENVELOPE_BYTES;

const _: () = assert!(MAX_LINE_BYTES > LONGEST_WRITTEN_LINE);
// An inv of the protocol's maximum, `{"type":"transaction","hash":"<64 hex>"},` per item.
const _: () = assert!(p2p_tap::wire::MAX_ITEMS * 100 + 4096 < MAX_LINE_BYTES);

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why a recording cannot be read: the file and what is wrong with it. Its `Display` is one
/// line, with the line number where there is one.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub problem: Problem,
}

/// What is wrong with a recording. Line numbers count decompressed lines from 1 (the header).
#[derive(Debug)]
#[non_exhaustive]
pub enum Problem {
    /// The file cannot be opened or its metadata read.
    Open(io::Error),
    /// The path names a directory.
    Directory,
    /// Zero bytes.
    Empty,
    /// The file does not start with the gzip magic bytes.
    NotGzip,
    /// The gzip stream stops in the middle (a recorder killed before it finished), while reading
    /// `line`.
    GzipTruncated { line: u64 },
    /// The compressed data is damaged (a bad checksum or deflate stream), while reading `line`.
    GzipCorrupt { line: u64, error: io::Error },
    /// `bytes` bytes after the last gzip member, at `offset` in the file, are not gzip.
    TrailingBytes { offset: u64, bytes: u64 },
    /// Reading the file failed.
    Io { line: u64, error: io::Error },
    /// A line longer than `limit` bytes; nothing past the limit was read.
    LineTooLong { line: u64, limit: usize },
    /// The first line is not a recording header.
    NotRecording { reason: String },
    /// The header's format version is newer than this build reads.
    NewerVersion { version: u64 },
    /// A line that is not a recording line.
    BadLine { line: u64, reason: String },
    /// The file holds its header and nothing else: no arrival and no end line.
    HeaderOnly,
    /// The file ends after `lines` lines without an end line.
    NoEndLine { lines: u64 },
    /// A line after the end line; `recording` when it is a second recording's header.
    AfterEnd { line: u64, recording: bool },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.problem {
            Problem::Open(error) => write!(f, "cannot read {path}: {error}"),
            Problem::Directory => write!(f, "{path} is a directory, not a recording"),
            Problem::Empty => write!(f, "{path} is empty (0 bytes): not a recording"),
            Problem::NotGzip => {
                write!(f, "{path} is not a recording: it is not gzip-compressed")
            }
            Problem::GzipTruncated { line } => write!(
                f,
                "{path} is truncated: its gzip stream ends early, in line {line} (was the recorder killed before it finished?)"
            ),
            Problem::GzipCorrupt { line, error } => write!(
                f,
                "{path} line {line}: the gzip data is corrupt ({error})"
            ),
            Problem::TrailingBytes { offset, bytes } => write!(
                f,
                "{path} has {bytes} trailing bytes after its gzip stream, at byte {offset}, that are not gzip"
            ),
            Problem::Io { line, error } => write!(f, "{path} line {line}: cannot read: {error}"),
            Problem::LineTooLong { line, limit } => write!(
                f,
                "{path} line {line}: longer than {limit} bytes, the longest a recording line can be"
            ),
            Problem::NotRecording { reason } => write!(f, "{path}: not a recording: {reason}"),
            Problem::NewerVersion { version } => write!(
                f,
                "{path}: recording format version {version} is not supported (this build reads 1 to {VERSION}): upgrade the exporter"
            ),
            Problem::BadLine { line, reason } => {
                write!(f, "{path} line {line}: not a recording line: {reason}")
            }
            Problem::HeaderOnly => write!(
                f,
                "{path} holds only a header: no arrivals and no end line (the recorder stopped before writing any)"
            ),
            Problem::NoEndLine { lines } => write!(
                f,
                "{path} is truncated: no end line after {lines} lines (was the recorder killed before it finished?)"
            ),
            Problem::AfterEnd {
                line,
                recording: true,
            } => write!(
                f,
                "{path} line {line}: a second recording starts after the end line (two recordings concatenated?)"
            ),
            Problem::AfterEnd {
                line,
                recording: false,
            } => write!(f, "{path} line {line}: trailing data after the end line"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            Problem::Open(error)
            | Problem::GzipCorrupt { error, .. }
            | Problem::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A recording read whole: its header, every arrival with its line number, and the end.
#[derive(Clone, Debug, PartialEq)]
pub struct Contents {
    pub header: Header,
    /// (line number, nanoseconds since the recording began, arrival), in file order.
    pub arrivals: Vec<(u64, u64, Arrival)>,
    /// The end line's `t`: when recording stopped.
    pub end: u64,
}

/// Reads the recording at `path` whole, or says in one line why it cannot be used.
pub fn read(path: &Path) -> Result<Contents, ReadError> {
    read_with_limit(path, MAX_LINE_BYTES)
}

/// [`read`] with another line limit.
pub fn read_with_limit(path: &Path, limit: usize) -> Result<Contents, ReadError> {
    let mut reader = Reader::open_with_limit(path, limit)?;
    let mut arrivals = Vec::new();
    while let Some((line, t, arrival)) = reader.next_arrival()? {
        arrivals.push((line, t, arrival));
    }
    Ok(Contents {
        header: reader.header,
        arrivals,
        end: reader.end.unwrap_or_default(),
    })
}

/// Reads a recording arrival by arrival, checking as it goes.
pub struct Reader {
    path: PathBuf,
    lines: BufReader<Members>,
    limit: usize,
    /// The line being read (or last read).
    line: u64,
    buffer: Vec<u8>,
    header: Header,
    end: Option<u64>,
}

impl Reader {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Reader, ReadError> {
        Reader::open_with_limit(path, MAX_LINE_BYTES)
    }

    /// [`Reader::open`] with another line limit (also applied to the header).
    pub fn open_with_limit(path: &Path, limit: usize) -> Result<Reader, ReadError> {
        let fail = |problem| ReadError {
            path: path.to_owned(),
            problem,
        };
        let mut file = File::open(path).map_err(|e| fail(Problem::Open(e)))?;
        let metadata = file.metadata().map_err(|e| fail(Problem::Open(e)))?;
        if metadata.is_dir() {
            return Err(fail(Problem::Directory));
        }
        let mut magic = [0u8; 2];
        let mut got = 0;
        while got < magic.len() {
            match file.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(fail(Problem::Io { line: 1, error: e })),
            }
        }
        match got {
            0 => return Err(fail(Problem::Empty)),
            _ if magic != GZIP_MAGIC => return Err(fail(Problem::NotGzip)),
            _ => {}
        }
        let members = Members::new(Counting {
            inner: BufReader::new(io::Cursor::new(magic).chain(file)),
            offset: 0,
        });
        let mut reader = Reader {
            path: path.to_owned(),
            lines: BufReader::new(members),
            limit,
            line: 0,
            buffer: Vec::new(),
            header: Header::new(crate::Source::Embedded),
            end: None,
        };
        let Some(first) = reader.next_line()? else {
            return Err(fail(Problem::NotRecording {
                reason: "the gzip stream holds nothing".to_owned(),
            }));
        };
        reader.header = parse_header(first).map_err(fail)?;
        Ok(reader)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next arrival as (line number, `t`, arrival); `None` after the end line, once the file
    /// is checked to hold nothing after it.
    pub fn next_arrival(&mut self) -> Result<Option<(u64, u64, Arrival)>, ReadError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let Some(text) = self.next_line()? else {
            let problem = match self.line {
                1 => Problem::HeaderOnly,
                lines => Problem::NoEndLine { lines },
            };
            return Err(self.error(problem));
        };
        let parsed: Line = serde_json::from_slice(text).map_err(|e| {
            let reason = e.to_string();
            self.error(Problem::BadLine {
                line: self.line,
                reason,
            })
        })?;
        match parsed.arrival {
            Arrival::End => {
                self.end = Some(parsed.t);
                self.check_nothing_after_end()?;
                Ok(None)
            }
            arrival => Ok(Some((self.line, parsed.t, arrival))),
        }
    }

    fn check_nothing_after_end(&mut self) -> Result<(), ReadError> {
        match self.next_line()? {
            None => Ok(()),
            Some(text) => {
                let recording = serde_json::from_slice::<serde_json::Value>(text)
                    .is_ok_and(|v| v["format"] == FORMAT);
                Err(self.error(Problem::AfterEnd {
                    line: self.line,
                    recording,
                }))
            }
        }
    }

    fn error(&self, problem: Problem) -> ReadError {
        ReadError {
            path: self.path.clone(),
            problem,
        }
    }

    /// The next line without its newline, or `None` at the end of the data. Reads at most
    /// `limit + 1` bytes of it, so memory stays bounded by the limit whatever the line's length.
    fn next_line(&mut self) -> Result<Option<&[u8]>, ReadError> {
        self.buffer.clear();
        let line = self.line + 1;
        let cap = u64::try_from(self.limit)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let read = (&mut self.lines)
            .take(cap)
            .read_until(b'\n', &mut self.buffer);
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                let problem = classify(line, error);
                return Err(self.error(problem));
            }
        };
        if read == 0 {
            return Ok(None);
        }
        self.line = line;
        if self.buffer.last() == Some(&b'\n') {
            self.buffer.pop();
        } else if self.buffer.len() > self.limit {
            return Err(self.error(Problem::LineTooLong {
                line,
                limit: self.limit,
            }));
        }
        Ok(Some(&self.buffer))
    }
}

fn parse_header(line: &[u8]) -> Result<Header, Problem> {
    let not = |reason: String| Problem::NotRecording { reason };
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|_| not("the first line is not JSON".to_owned()))?;
    if value["format"] != FORMAT {
        return Err(not(format!("the first line is not a {FORMAT} header")));
    }
    match value["v"].as_u64() {
        Some(v) if (1..=u64::from(VERSION)).contains(&v) => {}
        Some(version) => return Err(Problem::NewerVersion { version }),
        None => return Err(not("the header has no version".to_owned())),
    }
    serde_json::from_value(value).map_err(|e| not(format!("bad header: {e}")))
}

fn classify(line: u64, error: io::Error) -> Problem {
    if let Some(trailing) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TrailingBytes>())
    {
        return Problem::TrailingBytes {
            offset: trailing.offset,
            bytes: trailing.bytes,
        };
    }
    match error.kind() {
        io::ErrorKind::UnexpectedEof => Problem::GzipTruncated { line },
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
            Problem::GzipCorrupt { line, error }
        }
        _ => Problem::Io { line, error },
    }
}

/// The gzip members of a file, read one after the other.
#[allow(
    clippy::disallowed_types,
    reason = "one GzDecoder per member, so that what follows each member is checked: another member, or nothing (MultiGzDecoder would report trailing bytes as a bad header)"
)]
mod gzip {
    use std::fmt;
    use std::fs::File;
    use std::io::{self, BufRead, BufReader, Read};

    use flate2::bufread::GzDecoder;

    use super::GZIP_MAGIC;

    /// Compressed input that counts the bytes consumed, for the offset of trailing bytes.
    pub(super) struct Counting<R> {
        pub(super) inner: R,
        pub(super) offset: u64,
    }

    impl<R: BufRead> Read for Counting<R> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(out)?;
            self.offset += n as u64;
            Ok(n)
        }
    }

    impl<R: BufRead> BufRead for Counting<R> {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            self.inner.fill_buf()
        }

        fn consume(&mut self, amount: usize) {
            self.offset += amount as u64;
            self.inner.consume(amount);
        }
    }

    /// Bytes after the last gzip member that do not start another.
    #[derive(Debug)]
    pub(super) struct TrailingBytes {
        pub(super) offset: u64,
        pub(super) bytes: u64,
    }

    impl fmt::Display for TrailingBytes {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} bytes after the gzip stream are not gzip", self.bytes)
        }
    }

    impl std::error::Error for TrailingBytes {}

    pub(super) type Input = Counting<BufReader<io::Chain<io::Cursor<[u8; 2]>, File>>>;

    /// Every gzip member of the file, one after the other (as `gzip -d` reads them); what follows
    /// the last member must be another member or nothing.
    pub(super) struct Members {
        decoder: Option<GzDecoder<Input>>,
    }

    impl Members {
        pub(super) fn new(input: Input) -> Members {
            Members {
                decoder: Some(GzDecoder::new(input)),
            }
        }
    }

    impl Read for Members {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if out.is_empty() {
                return Ok(0);
            }
            loop {
                let Some(decoder) = self.decoder.as_mut() else {
                    return Ok(0);
                };
                let n = decoder.read(out)?;
                if n > 0 {
                    return Ok(n);
                }
                // This member is finished (its checksum checked): another member, or the end.
                let input = decoder.get_mut();
                let rest = input.fill_buf()?;
                if rest.is_empty() {
                    self.decoder = None;
                    return Ok(0);
                }
                // A buffer may end after one byte of the next member's magic.
                let another =
                    rest[0] == GZIP_MAGIC[0] && rest.get(1).is_none_or(|&b| b == GZIP_MAGIC[1]);
                if !another {
                    let offset = input.offset;
                    let mut bytes = 0u64;
                    loop {
                        let chunk = input.fill_buf()?.len();
                        if chunk == 0 {
                            break;
                        }
                        bytes += chunk as u64;
                        input.consume(chunk);
                    }
                    self.decoder = None;
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        TrailingBytes { offset, bytes },
                    ));
                }
                let input = self.decoder.take().map(GzDecoder::into_inner);
                self.decoder = input.map(GzDecoder::new);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    const HEADER: &str = r#"{"format":"p2p-recording","v":1,"source":"embedded"}"#;
    const REGISTER: &str = r#"{"t":5,"kind":"register","peer":"0000000000000001","inbound":true}"#;
    const END: &str = r#"{"t":9,"kind":"end"}"#;

    fn gz(text: &str) -> Vec<u8> {
        let mut out = GzEncoder::new(Vec::new(), Compression::fast());
        out.write_all(text.as_bytes()).unwrap();
        out.finish().unwrap()
    }

    fn lines(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Writes `bytes` to a file in a fresh directory and reads it with `limit`.
    fn read_bytes(bytes: &[u8], limit: usize) -> (tempfile::TempDir, Result<Contents, ReadError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recording.ndjson.gz");
        std::fs::write(&path, bytes).unwrap();
        let result = read_with_limit(&path, limit);
        (dir, result)
    }

    /// The problem reading `bytes`, checking that the message is one line naming the file.
    fn problem(bytes: &[u8], limit: usize) -> (Problem, String) {
        let (dir, result) = read_bytes(bytes, limit);
        let error = result.unwrap_err();
        let message = error.to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.contains(&dir.path().join("recording.ndjson.gz").display().to_string()),
            "{message}"
        );
        (error.problem, message)
    }

    #[test]
    fn a_whole_recording_reads_with_its_line_numbers_and_end() {
        let (_dir, contents) = read_bytes(gz(&lines(&[HEADER, REGISTER, END])).as_slice(), 1024);
        let contents = contents.unwrap();
        assert_eq!(contents.header.source, crate::Source::Embedded);
        assert_eq!(contents.end, 9);
        assert_eq!(
            contents.arrivals,
            [(
                2,
                5,
                Arrival::Register {
                    peer: Some("0000000000000001".to_owned()),
                    inbound: true
                }
            )]
        );
        // No arrivals, but an end: a recording stopped at once is a recording.
        let (_dir, contents) = read_bytes(&gz(&lines(&[HEADER, END])), 1024);
        assert!(contents.unwrap().arrivals.is_empty());
    }

    #[test]
    fn a_recording_split_over_gzip_members_reads_whole() {
        let text = lines(&[HEADER, REGISTER, END]);
        let (first, second) = text.split_at(HEADER.len() + 10);
        let bytes = [gz(first), gz(second)].concat();
        let (_dir, contents) = read_bytes(&bytes, 1024);
        let contents = contents.unwrap();
        assert_eq!((contents.arrivals.len(), contents.end), (1, 9));
    }

    #[test]
    fn a_line_over_the_limit_is_refused_and_one_at_the_limit_is_not() {
        let limit = 4096;
        let at_limit = format!("{REGISTER:<limit$}");
        assert_eq!(at_limit.len(), limit);
        let (_dir, contents) = read_bytes(&gz(&lines(&[HEADER, &at_limit, END])), limit);
        assert_eq!(contents.unwrap().arrivals.len(), 1);

        let over = format!("{REGISTER:<width$}", width = limit + 1);
        let (found, message) = problem(&gz(&lines(&[HEADER, &over, END])), limit);
        assert!(
            matches!(
                found,
                Problem::LineTooLong {
                    line: 2,
                    limit: 4096
                }
            ),
            "{found:?}"
        );
        assert!(
            message.contains("line 2: longer than 4096 bytes"),
            "{message}"
        );
        // A line with no newline at all, far longer than the limit, and a header that is too long.
        let huge = "x".repeat(1 << 20);
        let (found, _) = problem(&gz(&format!("{HEADER}\n{huge}")), limit);
        assert!(
            matches!(found, Problem::LineTooLong { line: 2, .. }),
            "{found:?}"
        );
        let (found, _) = problem(&gz(&huge), limit);
        assert!(
            matches!(found, Problem::LineTooLong { line: 1, .. }),
            "{found:?}"
        );
    }

    #[test]
    fn the_limit_holds_every_line_a_writer_produces() {
        const { assert!(LONGEST_WRITTEN_LINE < MAX_LINE_BYTES) };
        let longest = format!(r#"{{"t":{},"kind":"tap","record":}}"#, u64::MAX);
        assert!(longest.len() <= ENVELOPE_BYTES, "{longest}");
    }

    #[test]
    fn a_file_without_an_end_line_is_truncated() {
        let (found, message) = problem(&gz(&lines(&[HEADER, REGISTER, REGISTER])), 1024);
        assert!(
            matches!(found, Problem::NoEndLine { lines: 3 }),
            "{found:?}"
        );
        assert!(
            message.contains("is truncated: no end line after 3 lines"),
            "{message}"
        );
    }

    #[test]
    fn a_header_alone_is_refused() {
        let (found, message) = problem(&gz(&lines(&[HEADER])), 1024);
        assert!(matches!(found, Problem::HeaderOnly), "{found:?}");
        assert!(message.contains("holds only a header"), "{message}");
    }

    #[test]
    fn two_recordings_concatenated_are_refused_at_the_second_header() {
        let one = gz(&lines(&[HEADER, REGISTER, END]));
        let (found, message) = problem(&[one.clone(), one].concat(), 1024);
        assert!(
            matches!(
                found,
                Problem::AfterEnd {
                    line: 4,
                    recording: true
                }
            ),
            "{found:?}"
        );
        assert!(
            message.contains("line 4: a second recording starts after the end line"),
            "{message}"
        );
    }

    #[test]
    fn lines_after_the_end_line_are_refused() {
        let (found, message) = problem(&gz(&lines(&[HEADER, END, REGISTER])), 1024);
        assert!(
            matches!(
                found,
                Problem::AfterEnd {
                    line: 3,
                    recording: false
                }
            ),
            "{found:?}"
        );
        assert!(
            message.contains("line 3: trailing data after the end line"),
            "{message}"
        );
    }

    #[test]
    fn bytes_after_the_gzip_stream_that_are_not_gzip_are_refused() {
        let one = gz(&lines(&[HEADER, END]));
        let offset = one.len() as u64;
        let (found, message) = problem(&[one, b"garbage\n".to_vec()].concat(), 1024);
        assert!(
            matches!(found, Problem::TrailingBytes { bytes: 8, offset: o } if o == offset),
            "{found:?}"
        );
        assert!(message.contains("8 trailing bytes"), "{message}");
        // Zero padding too.
        let one = gz(&lines(&[HEADER, END]));
        let (found, _) = problem(&[one, vec![0; 512]].concat(), 1024);
        assert!(
            matches!(found, Problem::TrailingBytes { bytes: 512, .. }),
            "{found:?}"
        );
    }

    #[test]
    fn a_directory_is_named_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let error = read(dir.path()).unwrap_err();
        assert!(matches!(error.problem, Problem::Directory), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("{} is a directory, not a recording", dir.path().display())
        );
    }

    #[test]
    fn missing_empty_and_plain_files_say_which() {
        let dir = tempfile::tempdir().unwrap();
        let error = read(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(error.problem, Problem::Open(_)), "{error:?}");
        assert!(error.to_string().starts_with("cannot read "), "{error}");
        let (found, _) = problem(b"", 1024);
        assert!(matches!(found, Problem::Empty), "{found:?}");
        let (found, message) = problem(lines(&[HEADER, END]).as_bytes(), 1024);
        assert!(matches!(found, Problem::NotGzip), "{found:?}");
        assert!(message.contains("not gzip-compressed"), "{message}");
        let (found, _) = problem(&[0x1f], 1024);
        assert!(matches!(found, Problem::NotGzip), "{found:?}");
    }

    #[test]
    fn a_cut_or_damaged_gzip_stream_says_which() {
        let text: String = std::iter::once(HEADER.to_owned())
            .chain((0..2000).map(|t| format!(r#"{{"t":{t},"kind":"register","inbound":true}}"#)))
            .chain([END.to_owned()])
            .map(|l| l + "\n")
            .collect();
        let full = gz(&text);
        let (found, message) = problem(&full[..full.len() / 2], 1024);
        assert!(matches!(found, Problem::GzipTruncated { .. }), "{found:?}");
        assert!(
            message.contains("is truncated: its gzip stream ends early"),
            "{message}"
        );
        // The trailer's checksum no longer matches.
        let mut damaged = full.clone();
        let crc = damaged.len() - 8;
        damaged[crc] ^= 0xff;
        let (found, message) = problem(&damaged, 1024);
        assert!(matches!(found, Problem::GzipCorrupt { .. }), "{found:?}");
        assert!(message.contains("the gzip data is corrupt"), "{message}");
    }

    #[test]
    fn headers_and_lines_that_are_not_a_recordings_say_why() {
        let newer = r#"{"format":"p2p-recording","v":2,"source":"embedded"}"#;
        let (found, message) = problem(&gz(&lines(&[newer, END])), 1024);
        assert!(
            matches!(found, Problem::NewerVersion { version: 2 }),
            "{found:?}"
        );
        assert!(message.contains("version 2 is not supported"), "{message}");
        let (found, message) = problem(&gz(&lines(&[r#"{"hello":1}"#, END])), 1024);
        assert!(matches!(found, Problem::NotRecording { .. }), "{found:?}");
        assert!(message.contains("not a p2p-recording header"), "{message}");
        let (found, _) = problem(&gz(""), 1024);
        assert!(matches!(found, Problem::NotRecording { .. }), "{found:?}");
        let (found, message) = problem(&gz(&lines(&[HEADER, "not json", END])), 1024);
        assert!(
            matches!(found, Problem::BadLine { line: 2, .. }),
            "{found:?}"
        );
        assert!(
            message.contains("line 2: not a recording line"),
            "{message}"
        );
        let (found, _) = problem(&gz(&lines(&[HEADER, "", END])), 1024);
        assert!(
            matches!(found, Problem::BadLine { line: 2, .. }),
            "{found:?}"
        );
    }
}
