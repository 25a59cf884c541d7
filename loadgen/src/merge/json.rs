//! Reading a shard's JSON report without holding its window rows, for `merge`.
//!
//! A report's `windows` array has a row per second of the run (~1 kB each), so parsing whole
//! reports made a merge's memory grow with the run's length. [`read_without`] parses the report
//! with that array read past (a scan that only tracks nesting and strings, not a parse) and
//! says where the array starts; [`Rows`] later reads its elements one at a time from there, each
//! parsed by serde on its own. The file is read through a buffer either way: memory is one row.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::Path;

use serde::de::DeserializeOwned;

/// A JSON text read byte by byte through a buffer, knowing its offset.
struct Scan<R> {
    r: R,
    pos: u64,
}

type Res<T> = std::result::Result<T, String>;

fn io(e: std::io::Error) -> String {
    format!("cannot read ({e})")
}

impl<R: BufRead> Scan<R> {
    /// Skips whitespace; the next byte (not consumed), `None` at the end.
    fn skip_ws(&mut self) -> Res<Option<u8>> {
        loop {
            let buf = self.r.fill_buf().map_err(io)?;
            if buf.is_empty() {
                return Ok(None);
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(n) => {
                    let b = buf[n];
                    self.consume(n);
                    return Ok(Some(b));
                }
                None => {
                    let n = buf.len();
                    self.consume(n);
                }
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.r.consume(n);
        self.pos += n as u64;
    }

    /// Takes the next byte (after [`Scan::skip_ws`] said what it is) into `out`.
    fn take(&mut self, out: &mut Vec<u8>, b: u8) {
        out.push(b);
        self.consume(1);
    }

    /// Reads one JSON value (after whitespace), appending its bytes to `out` when given. Only
    /// strings and nesting are followed (to find its end): serde checks the rest when it parses.
    fn value(&mut self, mut out: Option<&mut Vec<u8>>) -> Res<()> {
        let first = self.skip_ws()?.ok_or("ends early")?;
        // Nesting depth, inside a string, after a backslash in one.
        let (mut depth, mut in_str, mut esc) = (0usize, false, false);
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        let mut started = false;
        loop {
            let buf = self.r.fill_buf().map_err(io)?;
            if buf.is_empty() {
                return if scalar && started {
                    Ok(())
                } else {
                    Err("ends early".into())
                };
            }
            let mut end = None;
            for (i, &b) in buf.iter().enumerate() {
                if scalar {
                    if matches!(b, b',' | b']' | b'}') || b.is_ascii_whitespace() {
                        end = Some(i);
                        break;
                    }
                    started = true;
                } else if in_str {
                    if esc {
                        esc = false;
                    } else if b == b'\\' {
                        esc = true;
                    } else if b == b'"' {
                        in_str = false;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                } else {
                    match b {
                        b'"' => in_str = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.checked_sub(1).ok_or("unbalanced")?;
                            if depth == 0 {
                                end = Some(i + 1);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            let n = end.unwrap_or(buf.len());
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&buf[..n]);
            }
            self.consume(n);
            if end.is_some() {
                return Ok(());
            }
        }
    }
}

/// Parses the JSON object at `path` as `T` with the array under its top-level key `key` read
/// past (given to serde as `[]`); returns it and the byte offset of that array (`None`: no
/// such key).
pub(crate) fn read_without<T: DeserializeOwned>(path: &Path, key: &str) -> Res<(T, Option<u64>)> {
    let f = File::open(path).map_err(io)?;
    let mut s = Scan {
        r: BufReader::with_capacity(64 * 1024, f),
        pos: 0,
    };
    let (mut text, mut name) = (Vec::new(), Vec::new());
    let quoted = format!("\"{key}\"");
    let mut at = None;
    if s.skip_ws()? != Some(b'{') {
        return Err("not a JSON object".into());
    }
    s.take(&mut text, b'{');
    loop {
        match s.skip_ws()? {
            Some(b'}') => {
                s.take(&mut text, b'}');
                break;
            }
            Some(b',') => {
                s.take(&mut text, b',');
                continue;
            }
            Some(b'"') => {}
            _ => return Err("not a JSON object".into()),
        }
        name.clear();
        s.value(Some(&mut name))?;
        text.extend_from_slice(&name);
        if s.skip_ws()? != Some(b':') {
            return Err("not a JSON object".into());
        }
        s.take(&mut text, b':');
        s.skip_ws()?;
        if name == quoted.as_bytes() && at.is_none() {
            at = Some(s.pos);
            text.extend_from_slice(b"[]");
            s.value(None)?;
        } else {
            s.value(Some(&mut text))?;
        }
    }
    let t = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    Ok((t, at))
}

/// The elements of a JSON array in a file, read and parsed one at a time.
pub(crate) struct Rows<T> {
    s: Scan<BufReader<File>>,
    buf: Vec<u8>,
    /// Elements read so far; `None` once the array ended.
    read: Option<u64>,
    _t: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Rows<T> {
    /// The array at byte offset `at` of `path` (as [`read_without`] found it).
    pub(crate) fn open(path: &Path, at: u64) -> Res<Rows<T>> {
        let mut f = File::open(path).map_err(io)?;
        f.seek(SeekFrom::Start(at)).map_err(io)?;
        let mut s = Scan {
            r: BufReader::with_capacity(16 * 1024, f),
            pos: at,
        };
        if s.skip_ws()? != Some(b'[') {
            return Err(format!("no array at byte {at}"));
        }
        s.consume(1);
        Ok(Rows {
            s,
            buf: Vec::new(),
            read: Some(0),
            _t: PhantomData,
        })
    }

    /// The next element; `None` after the last.
    pub(crate) fn next_row(&mut self) -> Res<Option<T>> {
        let Some(read) = self.read else {
            return Ok(None);
        };
        let mut b = self.s.skip_ws()?;
        if b == Some(b']') {
            self.read = None;
            return Ok(None);
        }
        if read > 0 {
            if b != Some(b',') {
                return Err(format!("array element {read} is not followed by , or ]"));
            }
            self.s.consume(1);
            b = self.s.skip_ws()?;
        }
        if b.is_none() {
            return Err("the array ends early".into());
        }
        self.buf.clear();
        self.s.value(Some(&mut self.buf))?;
        let row =
            serde_json::from_slice(&self.buf).map_err(|e| format!("array element {read}: {e}"))?;
        self.read = Some(read + 1);
        Ok(Some(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Top {
        a: String,
        rows: Vec<Row>,
        z: Vec<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq, Clone)]
    struct Row {
        t: f64,
        s: String,
    }

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("kis-json-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Pretty and compact, with brackets and escaped quotes inside strings: the report without
    /// its rows, then the rows one by one, the same as serde's whole parse.
    #[test]
    fn reads_past_the_rows_then_streams_them() {
        let rows = vec![
            Row {
                t: 1.5,
                s: "a]}\"[{".into(),
            },
            Row {
                t: -2e-3,
                s: "\\".into(),
            },
        ];
        let value = serde_json::json!({
            "a": "rows ] \"rows\"",
            "rows": rows.iter().map(|r| serde_json::json!({"t": r.t, "s": r.s})).collect::<Vec<_>>(),
            "z": [1, 2],
        });
        for (name, text) in [
            ("pretty", serde_json::to_string_pretty(&value).unwrap()),
            ("compact", serde_json::to_string(&value).unwrap()),
        ] {
            let p = write(name, &text);
            let (top, at): (Top, _) = read_without(&p, "rows").unwrap();
            assert_eq!(top.a, "rows ] \"rows\"", "{name}");
            assert!(top.rows.is_empty());
            assert_eq!(top.z, vec![1, 2]);
            let mut r = Rows::<Row>::open(&p, at.unwrap()).unwrap();
            let mut got = Vec::new();
            while let Some(row) = r.next_row().unwrap() {
                got.push(row);
            }
            assert_eq!(got, rows, "{name}");
            assert!(r.next_row().unwrap().is_none());
            // Not that key: no offset.
            let (_, none): (serde_json::Value, _) = read_without(&p, "nope").unwrap();
            assert!(none.is_none());
        }
        let empty = write("empty", r#"{"a":"x","rows":[ ],"z":[]}"#);
        let (_, at): (Top, _) = read_without(&empty, "rows").unwrap();
        assert!(
            Rows::<Row>::open(&empty, at.unwrap())
                .unwrap()
                .next_row()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn broken_json_is_an_error() {
        for (name, text) in [
            ("cut", r#"{"a":"x","rows":[{"t":1,"s":"y"}"#),
            ("array", r#"[1,2]"#),
            ("junk", r#"{"a" "x"}"#),
        ] {
            let p = write(name, text);
            assert!(read_without::<Top>(&p, "rows").is_err(), "{name}");
        }
        let p = write(
            "badrow",
            r#"{"a":"x","rows":[{"t":1,"s":"y"} {"t":2}],"z":[]}"#,
        );
        let (_, at): (Top, _) = read_without(&p, "rows").unwrap();
        let mut r = Rows::<Row>::open(&p, at.unwrap()).unwrap();
        assert!(r.next_row().unwrap().is_some());
        assert!(r.next_row().is_err());
    }
}
