//! Protocol frames and items from arbitrary bytes: the decoder must never
//! panic, and every line it yields must parse or be rejected cleanly.
#![no_main]

use bytes::BytesMut;
use dsync::protocol::{Command, Frame, FrameCodec, Reply};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        if let Frame::Line(fields) = frame {
            let _ = Command::parse(&fields);
            let _ = Reply::parse(&fields);
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
