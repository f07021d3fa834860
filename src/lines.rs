//! Newline-delimited input read in place, with a bounded buffer: each line is
//! handed out as a slice of one reusable buffer (no copy per line), and a line
//! longer than [`MAX_EVENT_BYTES`] is skipped to its newline without being held,
//! so a multi-gigabyte line costs its length in reads, not in memory.

use std::io::{self, Read};

use forewarn_core::{decode, DecodeError, Event, MAX_EVENT_BYTES};

/// Bytes read per refill; the buffer holds at most this plus one event.
const CHUNK: usize = 256 * 1024;

/// One line of input, without its `\n`.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line within the event size limit.
    Text(&'a [u8]),
    /// A line of `len` bytes, over the limit; its bytes were not kept.
    TooLong {
        /// The line's length without its newline.
        len: usize,
    },
}

impl<'a> Line<'a> {
    /// The line as an event; an over-long line is `TooLarge`, as `run` refuses it.
    pub fn decode(self) -> Result<Event<'a>, DecodeError> {
        match self {
            Line::Text(text) => decode(text),
            Line::TooLong { len } => Err(DecodeError::TooLarge { size: len }),
        }
    }
}

/// Splits a reader into lines, holding no more than [`CHUNK`] + [`MAX_EVENT_BYTES`].
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Lines<R> {
    /// Reads lines from `reader`.
    pub fn new(reader: R) -> Self {
        Lines {
            reader,
            buf: vec![0; CHUNK + MAX_EVENT_BYTES + 1],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// The next line, or `None` at the end of input. A last line without a
    /// newline is still a line.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        let mut scanned = 0; // bytes of the pending line known to hold no newline
        loop {
            let pending = &self.buf[self.start + scanned..self.end];
            if let Some(at) = memchr::memchr(b'\n', pending) {
                let (from, to) = (self.start, self.start + scanned + at);
                self.start = to + 1;
                if to - from > MAX_EVENT_BYTES {
                    return Ok(Some(Line::TooLong { len: to - from }));
                }
                return Ok(Some(Line::Text(&self.buf[from..to])));
            }
            scanned = self.end - self.start;
            if scanned > MAX_EVENT_BYTES {
                return self.skip_long_line(scanned).map(Some);
            }
            if self.eof {
                if scanned == 0 {
                    return Ok(None);
                }
                let from = self.start;
                self.start = self.end;
                return Ok(Some(Line::Text(&self.buf[from..self.end])));
            }
            self.refill()?;
        }
    }

    /// Moves the pending bytes to the front and reads more behind them.
    fn refill(&mut self) -> io::Result<()> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            return Ok(());
        }
    }

    /// Discards an over-long line up to and including its newline (or the end
    /// of input), counting its length.
    fn skip_long_line<'s>(&'s mut self, mut len: usize) -> io::Result<Line<'s>> {
        loop {
            self.start = 0;
            self.end = 0;
            if self.eof {
                return Ok(Line::TooLong { len });
            }
            self.refill()?;
            if let Some(at) = memchr::memchr(b'\n', &self.buf[..self.end]) {
                self.start = at + 1;
                return Ok(Line::TooLong { len: len + at });
            }
            len += self.end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read, to cross every
    /// buffer boundary.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(self.data.len()).min(out.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn collect(data: &[u8], step: usize) -> Vec<Result<Vec<u8>, usize>> {
        let mut lines = Lines::new(Trickle { data, step });
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            out.push(match line {
                Line::Text(t) => Ok(t.to_vec()),
                Line::TooLong { len } => Err(len),
            });
        }
        out
    }

    #[test]
    fn lines_match_split_for_every_read_size() {
        let data = b"{\"a\":1}\n\n  \nlast without newline";
        let expected: Vec<Result<Vec<u8>, usize>> = data
            .split(|&b| b == b'\n')
            .map(|l| Ok(l.to_vec()))
            .collect();
        for step in [1, 2, 3, 7, 64, 1 << 20] {
            assert_eq!(collect(data, step), expected, "step {step}");
        }
        assert_eq!(collect(b"a\n", 1), vec![Ok(b"a".to_vec())]);
        assert!(collect(b"", 1).is_empty());
    }

    #[test]
    fn over_long_lines_are_skipped_and_measured() {
        let long = MAX_EVENT_BYTES + 1;
        for (len, step) in [(long, 4096), (3 * CHUNK + 5, CHUNK), (MAX_EVENT_BYTES, 999)] {
            let mut data = b"before\n".to_vec();
            data.extend(std::iter::repeat_n(b'x', len));
            data.extend(b"\nafter\n");
            let got = collect(&data, step);
            let middle = if len > MAX_EVENT_BYTES {
                Err(len)
            } else {
                Ok(vec![b'x'; len])
            };
            assert_eq!(
                got,
                vec![Ok(b"before".to_vec()), middle, Ok(b"after".to_vec())]
            );
        }
        // Over-long and unterminated at the end of input.
        let data = vec![b'y'; 2 * CHUNK];
        assert_eq!(collect(&data, CHUNK), vec![Err(2 * CHUNK)]);
    }
}
