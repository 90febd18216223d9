//! Framing: the byte stream between two brains is a sequence of frames.
//!
//! A frame is either a *line* (tab-separated, escaped text fields ended by
//! LF) or a *data chunk* (`DATA\t<len>\n` followed by exactly `len` raw
//! bytes). Chunks carry message bodies, so a body is never one big frame:
//! memory stays bounded by the chunk size whatever the message size.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use nom::branch::alt;
use nom::bytes::complete::{is_not, tag};
use nom::character::complete::char;
use nom::combinator::{all_consuming, map, value};
use nom::multi::{many0, separated_list1};
use nom::IResult;
use std::fmt;
use tokio_util::codec::{Decoder, Encoder};

/// Longest line accepted (a mailbox line with a long name, a message line
/// with many keywords). Anything longer is a broken or hostile peer.
pub const MAX_LINE: usize = 1 << 20;
/// Largest data chunk accepted; senders use [`CHUNK_SIZE`].
pub const MAX_CHUNK: usize = 1 << 20;
/// The chunk size senders use for bodies.
pub const CHUNK_SIZE: usize = 256 * 1024;

#[derive(Clone, PartialEq, Eq)]
pub enum Frame {
    Line(Vec<String>),
    Data(Bytes),
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Line(fields) => write!(f, "Line({})", fields.join(" | ")),
            Frame::Data(b) => write!(f, "Data({} bytes)", b.len()),
        }
    }
}

#[derive(Debug)]
pub enum FrameError {
    Io(std::io::Error),
    LineTooLong,
    ChunkTooLarge(usize),
    BadLine(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::LineTooLong => write!(f, "protocol line longer than {MAX_LINE} bytes"),
            FrameError::ChunkTooLarge(n) => {
                write!(
                    f,
                    "data chunk of {n} bytes exceeds the {MAX_CHUNK}-byte limit"
                )
            }
            FrameError::BadLine(l) => write!(f, "malformed protocol line: {l:?}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e)
    }
}

/// Escapes one field: backslash, TAB, LF and CR become `\\`, `\t`, `\n`,
/// `\r`, so a field can hold any text and a line never contains a raw TAB
/// or LF except as separator and terminator.
pub fn escape_into(field: &str, out: &mut BytesMut) {
    for b in field.bytes() {
        match b {
            b'\\' => out.put_slice(b"\\\\"),
            b'\t' => out.put_slice(b"\\t"),
            b'\n' => out.put_slice(b"\\n"),
            b'\r' => out.put_slice(b"\\r"),
            _ => out.put_u8(b),
        }
    }
}

fn escaped_char(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let (i, _) = char('\\')(i)?;
    alt((
        value(&b"\\"[..], char('\\')),
        value(&b"\t"[..], char('t')),
        value(&b"\n"[..], char('n')),
        value(&b"\r"[..], char('r')),
    ))(i)
}

fn field_piece(i: &[u8]) -> IResult<&[u8], &[u8]> {
    alt((is_not("\\\t"), escaped_char))(i)
}

fn field(i: &[u8]) -> IResult<&[u8], Vec<u8>> {
    map(many0(field_piece), |pieces: Vec<&[u8]>| pieces.concat())(i)
}

/// Splits and unescapes one line (without its LF) into fields.
pub fn parse_line(line: &[u8]) -> Result<Vec<String>, FrameError> {
    let bad = || FrameError::BadLine(String::from_utf8_lossy(line).chars().take(200).collect());
    let (_, raw) = all_consuming(separated_list1(tag("\t"), field))(line).map_err(|_| bad())?;
    raw.into_iter()
        .map(|f| String::from_utf8(f).map_err(|_| bad()))
        .collect()
}

/// The tokio-util codec for [`Frame`]s.
#[derive(Default)]
pub struct FrameCodec {
    /// Bytes of the current data chunk still to come, once its header is read.
    pending_chunk: Option<usize>,
    /// How far the buffer was already searched for LF (avoids rescans).
    scanned: usize,
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(len) = self.pending_chunk {
            if src.len() < len {
                src.reserve(len - src.len());
                return Ok(None);
            }
            self.pending_chunk = None;
            return Ok(Some(Frame::Data(src.split_to(len).freeze())));
        }
        let Some(pos) = src[self.scanned..].iter().position(|&b| b == b'\n') else {
            if src.len() > MAX_LINE {
                return Err(FrameError::LineTooLong);
            }
            self.scanned = src.len();
            return Ok(None);
        };
        let end = self.scanned + pos;
        self.scanned = 0;
        if end > MAX_LINE {
            return Err(FrameError::LineTooLong);
        }
        let line = src.split_to(end);
        src.advance(1);
        if let Some(len) = line.strip_prefix(b"DATA\t") {
            let len: usize = std::str::from_utf8(len)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| FrameError::BadLine(String::from_utf8_lossy(&line).into()))?;
            if len > MAX_CHUNK {
                return Err(FrameError::ChunkTooLarge(len));
            }
            self.pending_chunk = Some(len);
            return self.decode(src);
        }
        parse_line(&line).map(|f| Some(Frame::Line(f)))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() && self.pending_chunk.is_none() => Ok(None),
            None => Err(FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed in the middle of a frame",
            ))),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::Line(fields) => {
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        dst.put_u8(b'\t');
                    }
                    escape_into(f, dst);
                }
                dst.put_u8(b'\n');
            }
            Frame::Data(data) => {
                if data.len() > MAX_CHUNK {
                    return Err(FrameError::ChunkTooLarge(data.len()));
                }
                dst.put_slice(format!("DATA\t{}\n", data.len()).as_bytes());
                dst.put_slice(&data);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(frames: Vec<Frame>) -> Vec<Frame> {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        for f in frames {
            codec.encode(f, &mut buf).unwrap();
        }
        let mut out = Vec::new();
        // Feed byte by byte to exercise partial frames.
        let all = buf.split().freeze();
        let mut feed = BytesMut::new();
        for b in all.iter() {
            feed.put_u8(*b);
            while let Some(f) = codec.decode(&mut feed).unwrap() {
                out.push(f);
            }
        }
        assert!(codec.decode_eof(&mut feed).unwrap().is_none());
        out
    }

    #[test]
    fn lines_and_chunks_roundtrip() {
        let frames = vec![
            Frame::Line(vec!["HELLO".into(), "dsync".into(), "1".into()]),
            Frame::Line(vec!["BOX".into(), "a\tb\\c\nd\re".into(), "".into()]),
            Frame::Data(Bytes::from_static(b"DATA\t5\nraw\n\tbytes")),
            Frame::Data(Bytes::new()),
            Frame::Line(vec!["".into()]),
        ];
        assert_eq!(roundtrip(frames.clone()), frames);
    }

    #[test]
    fn rejects_bad_escape_and_utf8() {
        assert!(parse_line(b"A\\x").is_err());
        assert!(parse_line(b"A\\").is_err());
        assert!(parse_line(b"\xff").is_err());
    }

    #[test]
    fn rejects_oversized() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&b"DATA\t99999999\n"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::ChunkTooLarge(_))
        ));
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(vec![b'a'; MAX_LINE + 2].as_slice());
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::LineTooLong)
        ));
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&b"DATA\t10\nabc"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(codec.decode_eof(&mut buf).is_err());
    }

    proptest! {
        #[test]
        fn any_fields_roundtrip(fields in proptest::collection::vec(".*", 1..6),
                                chunk in proptest::collection::vec(any::<u8>(), 0..300)) {
            let frames = vec![Frame::Line(fields), Frame::Data(Bytes::from(chunk))];
            prop_assert_eq!(roundtrip(frames.clone()), frames);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut codec = FrameCodec::default();
            let mut buf = BytesMut::from(bytes.as_slice());
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }
    }
}
