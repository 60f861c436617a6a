//! Standard output that a closed pipe ends quietly: `rollbackd history | head -1` is a normal
//! thing to type, so a reader that stops early is not an error and never a panic.

use std::io::{self, Write};

/// Writes `text` to stdout; a reader that went away (BrokenPipe) counts as done.
pub fn print(text: &str) -> io::Result<()> {
    write_quietly(&mut io::stdout().lock(), text)
}

/// Writes and flushes `text`, treating BrokenPipe as success.
pub fn write_quietly(w: &mut impl Write, text: &str) -> io::Result<()> {
    match w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// A line on stderr; a closed stderr is ignored, there is nobody left to tell.
pub fn eprint_line(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_done_other_errors_are_not() {
        assert!(write_quietly(&mut Closed, "x\n").is_ok());
        assert!(write_quietly(&mut Full, "x\n").is_err());
        let mut buf = Vec::new();
        write_quietly(&mut buf, "a\nb\n").unwrap();
        assert_eq!(buf, b"a\nb\n");
    }
}
