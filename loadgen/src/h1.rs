//! An incremental HTTP/1.1 response parser for the load loop.
//!
//! It is fed whatever bytes a read produced and says how many it used, so a response may arrive
//! in any number of pieces. The head is parsed with `httparse`; the body is framed by
//! `Content-Length`, `Transfer-Encoding: chunked`, or the end of the connection. Body bytes are
//! counted and dropped as they arrive (kept only when asked for), so a response of any size needs
//! no more buffer than its head.

use thiserror::Error;

/// Most header lines accepted in one response head.
const MAX_HEADERS: usize = 64;

/// Why a response is not valid HTTP/1.1 (all of them are the `protocol` error kind).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The status line or a header line is malformed.
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    /// `Content-Length` is not a number, or two of them disagree.
    #[error("bad Content-Length")]
    ContentLength,
    /// A chunk-size line is malformed.
    #[error("bad chunk size")]
    ChunkSize,
    /// A chunk's data is not followed by CRLF.
    #[error("chunk not terminated by CRLF")]
    ChunkEnd,
    /// `101 Switching Protocols`: this client never asks for an upgrade.
    #[error("unexpected protocol switch")]
    Upgrade,
    /// The connection ended before the response was complete.
    #[error("connection closed mid-response")]
    Truncated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailer,
    UntilClose,
    Done,
}

/// The parse of one response; [`ResponseParser::feed`] it bytes until [`ResponseParser::done`].
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    head_request: bool,
    status: u16,
    body_len: u64,
    close: bool,
    started: bool,
    kept: Option<Vec<u8>>,
}

impl ResponseParser {
    /// A parser for the answer to one request; `head_request` for `HEAD` (no body follows),
    /// `keep_body` to keep the body bytes.
    pub fn new(head_request: bool, keep_body: bool) -> ResponseParser {
        ResponseParser {
            state: State::Head,
            head_request,
            status: 0,
            body_len: 0,
            close: false,
            started: false,
            kept: keep_body.then(Vec::new),
        }
    }

    /// True once the whole response was parsed.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// True until the first byte of a response was fed (an idle keep-alive connection the server
    /// closed looks like this).
    pub fn untouched(&self) -> bool {
        !self.started
    }

    /// The final status code (0 before the head is parsed).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Body bytes seen so far (after chunk framing is removed).
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// True if the connection cannot carry another request after this response.
    pub fn must_close(&self) -> bool {
        self.close
    }

    /// The body, when it was kept.
    pub fn take_body(&mut self) -> Option<Vec<u8>> {
        self.kept.take()
    }

    /// Parses as much of `data` as it can; returns the bytes used. Fewer than `data.len()` are
    /// used when the response ends inside `data`, or when more bytes are needed to go on (then the
    /// unused tail must be fed again with more bytes after it).
    pub fn feed(&mut self, data: &[u8]) -> Result<usize, ParseError> {
        if !data.is_empty() {
            self.started = true;
        }
        let mut used = 0;
        loop {
            let rest = &data[used..];
            let n = match self.state {
                State::Done => return Ok(used),
                State::Head => match self.head(rest)? {
                    Some(n) => n,
                    None => return Ok(used),
                },
                State::Fixed(left) => {
                    let n = self.body(rest, left);
                    self.state = if left == n as u64 {
                        State::Done
                    } else {
                        State::Fixed(left - n as u64)
                    };
                    n
                }
                State::UntilClose => self.body(rest, u64::MAX),
                State::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, 0))) => {
                        self.state = State::Trailer;
                        n
                    }
                    Ok(httparse::Status::Complete((n, size))) => {
                        self.state = State::ChunkData(size);
                        n
                    }
                    Ok(httparse::Status::Partial) => return Ok(used),
                    Err(_) => return Err(ParseError::ChunkSize),
                },
                State::ChunkData(left) => {
                    let n = self.body(rest, left);
                    self.state = if left == n as u64 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left - n as u64)
                    };
                    n
                }
                State::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        self.state = State::ChunkSize;
                        2
                    }
                    [] | [b'\r'] => return Ok(used),
                    _ => return Err(ParseError::ChunkEnd),
                },
                State::Trailer => match rest {
                    // The empty line that ends the trailer section (usually at once: no trailers).
                    [b'\r', b'\n', ..] => {
                        self.state = State::Done;
                        2
                    }
                    _ => match rest.windows(2).position(|w| w == b"\r\n") {
                        Some(i) => i + 2,
                        None => return Ok(used),
                    },
                },
            };
            if n == 0 {
                return Ok(used);
            }
            used += n;
        }
    }

    /// The connection ended: completes a close-delimited body, anything else is truncated.
    pub fn eof(&mut self) -> Result<(), ParseError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(ParseError::Truncated),
        }
    }

    fn body(&mut self, rest: &[u8], left: u64) -> usize {
        let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        self.body_len += n as u64;
        if let Some(k) = self.kept.as_mut() {
            k.extend_from_slice(&rest[..n]);
        }
        n
    }

    /// Parses a head at the start of `rest`: `None` if incomplete, else the bytes it took.
    fn head(&mut self, rest: &[u8]) -> Result<Option<usize>, ParseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(ParseError::Head(e)),
        };
        let status = resp.code.unwrap_or(0);
        let http10 = resp.version == Some(0);
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut close = http10;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or(ParseError::ContentLength)?;
                if length.is_some_and(|l| l != v) {
                    return Err(ParseError::ContentLength);
                }
                length = Some(v);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked is the last coding when present (RFC 9112 §6.1).
                chunked = h
                    .value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|b| *b == b',') {
                    let t = token.trim_ascii();
                    if t.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") && http10 {
                        close = false;
                    }
                }
            }
        }
        match status {
            101 => return Err(ParseError::Upgrade),
            // An interim answer (100 Continue, 103 Early Hints): the real one follows.
            100..=199 => return Ok(Some(n)),
            _ => {}
        }
        self.status = status;
        self.close = close;
        self.state = if self.head_request || status == 204 || status == 304 {
            State::Done
        } else if chunked {
            State::ChunkSize
        } else {
            match length {
                Some(0) => State::Done,
                Some(l) => State::Fixed(l),
                None => {
                    self.close = true;
                    State::UntilClose
                }
            }
        };
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `parts` one after another the way a connection does (unused bytes carried over);
    /// returns the parser and the leftover bytes after the response.
    fn feed_parts(p: &mut ResponseParser, parts: &[&[u8]]) -> Result<Vec<u8>, ParseError> {
        let mut buf: Vec<u8> = Vec::new();
        for part in parts {
            buf.extend_from_slice(part);
            let n = p.feed(&buf)?;
            buf.drain(..n);
            if p.done() {
                break;
            }
        }
        Ok(buf)
    }

    const CL: &[u8] = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn content_length_in_one_piece_and_byte_by_byte() {
        let mut p = ResponseParser::new(false, true);
        assert_eq!(p.feed(CL), Ok(CL.len()));
        assert!(p.done());
        assert_eq!((p.status(), p.body_len()), (200, 5));
        assert_eq!(p.take_body().as_deref(), Some(&b"hello"[..]));
        assert!(!p.must_close());

        let mut p = ResponseParser::new(false, true);
        let parts: Vec<&[u8]> = CL.chunks(1).collect();
        let left = feed_parts(&mut p, &parts).unwrap();
        assert!(p.done() && left.is_empty());
        assert_eq!(p.take_body().as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn chunked_split_anywhere_gives_the_same_body() {
        let wire: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
        for split in 1..wire.len() {
            let mut p = ResponseParser::new(false, true);
            let left = feed_parts(&mut p, &[&wire[..split], &wire[split..]]).unwrap();
            assert!(p.done(), "split at {split}");
            assert!(left.is_empty());
            assert_eq!(p.take_body().as_deref(), Some(&b"hello, world"[..]));
            assert_eq!(p.body_len(), 12);
        }
    }

    #[test]
    fn pipelined_leftovers_are_not_consumed() {
        let mut two = CL.to_vec();
        two.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        let mut p = ResponseParser::new(false, false);
        let n = p.feed(&two).unwrap();
        assert_eq!(n, CL.len());
        assert!(p.done());
        // Feeding a finished parser uses nothing.
        assert_eq!(p.feed(&two[n..]), Ok(0));
        let mut q = ResponseParser::new(false, false);
        assert_eq!(q.feed(&two[n..]), Ok(two.len() - n));
        assert_eq!(q.status(), 404);
        assert!(q.done());
    }

    #[test]
    fn interim_responses_are_skipped() {
        let wire =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        let mut p = ResponseParser::new(false, false);
        assert_eq!(p.feed(wire), Ok(wire.len()));
        assert_eq!((p.status(), p.body_len(), p.done()), (201, 2, true));
    }

    #[test]
    fn bodiless_answers_and_close_delimited_bodies() {
        let mut p = ResponseParser::new(true, false);
        assert!(p.feed(CL).unwrap() < CL.len());
        assert!(p.done() && p.body_len() == 0, "HEAD has no body");
        let mut p = ResponseParser::new(false, false);
        p.feed(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n")
            .unwrap();
        assert!(p.done());

        let mut p = ResponseParser::new(false, false);
        let w = b"HTTP/1.0 200 OK\r\n\r\nall of it";
        assert_eq!(p.feed(w), Ok(w.len()));
        assert!(!p.done() && p.must_close());
        assert_eq!(p.eof(), Ok(()));
        assert_eq!(p.body_len(), 9);

        let mut p = ResponseParser::new(false, false);
        p.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx")
            .unwrap();
        assert!(p.done() && p.must_close());
        let mut p = ResponseParser::new(false, false);
        p.feed(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx")
            .unwrap();
        assert!(p.done() && !p.must_close());
    }

    #[test]
    fn malformed_responses_are_errors() {
        let bad: [(&[u8], ParseError); 5] = [
            (
                b"HTTP/1.1 2x0 OK\r\n\r\n",
                ParseError::Head(httparse::Error::Status),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                ParseError::ContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                ParseError::ChunkSize,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc",
                ParseError::ChunkEnd,
            ),
        ];
        for (wire, want) in bad {
            let mut p = ResponseParser::new(false, false);
            assert_eq!(p.feed(wire), Err(want), "{}", String::from_utf8_lossy(wire));
        }
        let mut p = ResponseParser::new(false, false);
        assert_eq!(
            p.feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            Err(ParseError::Upgrade)
        );
        // Cut short: the connection closed inside the body.
        let mut p = ResponseParser::new(false, false);
        p.feed(&CL[..CL.len() - 2]).unwrap();
        assert_eq!(p.eof(), Err(ParseError::Truncated));
        assert!(!p.untouched());
        assert!(ResponseParser::new(false, false).untouched());
    }
}
