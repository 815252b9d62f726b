//! Splitting a byte stream into lines, with a bound on how much one line may buffer.

use crate::wire::Reject;

/// What [`LineBuffer::next_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line, without its newline.
    Line(&'a [u8]),
    /// A line grew past the limit: reported once, then its bytes are discarded up to the next
    /// newline, so the stream goes on with the line after it.
    Rejected(Reject),
}

/// Accumulates reads of any size and hands out whole lines. Memory stays below the limit plus one
/// read, whatever the peer sends.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Start of the current (incomplete) line in `buf`.
    start: usize,
    /// Bytes of `buf` after `start` already searched for a newline.
    scanned: usize,
    /// Inside an oversize line: discard until the next newline.
    skipping: bool,
    max: usize,
}

impl LineBuffer {
    pub fn new(max_line: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            scanned: 0,
            skipping: false,
            max: max_line,
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            // Lines before `start` were handed out; keep only the incomplete one.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete line or rejection, if the bytes pushed so far hold one.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        loop {
            let pending = &self.buf[self.start + self.scanned..];
            match pending.iter().position(|&b| b == b'\n') {
                Some(offset) => {
                    let end = self.start + self.scanned + offset;
                    let line_start = self.start;
                    self.start = end + 1;
                    self.scanned = 0;
                    if self.skipping {
                        self.skipping = false;
                        continue;
                    }
                    return Some(Frame::Line(&self.buf[line_start..end]));
                }
                None => {
                    let partial = self.buf.len() - self.start;
                    if self.skipping {
                        self.discard();
                        return None;
                    }
                    if partial > self.max {
                        self.skipping = true;
                        self.discard();
                        return Some(Frame::Rejected(Reject::Oversize));
                    }
                    self.scanned = partial;
                    return None;
                }
            }
        }
    }

    /// The stream ended: a partial line left over is truncated (an oversize one was already
    /// reported).
    pub fn finish(&mut self) -> Option<Reject> {
        let partial = self.buf.len() - self.start;
        let truncated = partial > 0 && !self.skipping;
        self.discard();
        self.skipping = false;
        truncated.then_some(Reject::Truncated)
    }

    fn discard(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(buffer: &mut LineBuffer) -> Vec<Result<Vec<u8>, Reject>> {
        let mut out = Vec::new();
        while let Some(frame) = buffer.next_frame() {
            out.push(match frame {
                Frame::Line(line) => Ok(line.to_vec()),
                Frame::Rejected(reason) => Err(reason),
            });
        }
        out
    }

    #[test]
    fn a_stream_split_at_every_byte_gives_the_same_lines() {
        let stream = b"{\"a\":1}\n\n{\"b\":22}\nxyz";
        for split in 0..=stream.len() {
            let mut buffer = LineBuffer::new(64);
            buffer.push(&stream[..split]);
            let mut got = lines(&mut buffer);
            buffer.push(&stream[split..]);
            got.extend(lines(&mut buffer));
            assert_eq!(
                got,
                vec![
                    Ok(b"{\"a\":1}".to_vec()),
                    Ok(vec![]),
                    Ok(b"{\"b\":22}".to_vec())
                ],
                "split at {split}"
            );
            assert_eq!(buffer.finish(), Some(Reject::Truncated));
        }
    }

    #[test]
    fn an_oversize_line_is_reported_once_and_the_next_line_survives() {
        let mut buffer = LineBuffer::new(8);
        for _ in 0..100 {
            buffer.push(b"0123456789");
        }
        let mut got = lines(&mut buffer);
        assert!(buffer.buf.len() <= 10, "an oversize line is not kept");
        buffer.push(b"tail\nok\n");
        got.extend(lines(&mut buffer));
        assert_eq!(got, vec![Err(Reject::Oversize), Ok(b"ok".to_vec())]);
        assert_eq!(buffer.finish(), None);
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_kept() {
        let mut buffer = LineBuffer::new(4);
        buffer.push(b"abcd");
        assert_eq!(buffer.next_frame(), None);
        buffer.push(b"\n");
        assert_eq!(buffer.next_frame(), Some(Frame::Line(b"abcd")));
    }
}
