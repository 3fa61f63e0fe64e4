//! The command line's printing: one line at a time to stdout ([`say!`]) or stderr
//! ([`note!`]), where a closed stream (`wgtrain train ... | head -1`) means "stop printing
//! there", never a panic: the run goes on and writes every output it was asked for.
//! (`println!` panics on a closed pipe, losing the run's checkpoint and a sweep's files.)

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to `stream` unless it failed before; a failed write (a closed pipe, a
/// full disk behind a redirection) marks it closed, and nothing more is written there.
fn write_to(mut stream: impl Write, closed: &AtomicBool, text: fmt::Arguments<'_>, newline: bool) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    let written = stream
        .write_fmt(text)
        .and_then(|()| {
            if newline {
                stream.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| stream.flush());
    if written.is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

/// Prints `text` and a newline on stdout (see the module docs).
pub fn say(text: fmt::Arguments<'_>) {
    write_to(std::io::stdout().lock(), &STDOUT_CLOSED, text, true);
}

/// Prints `text` on stdout, without a newline.
pub fn say_raw(text: fmt::Arguments<'_>) {
    write_to(std::io::stdout().lock(), &STDOUT_CLOSED, text, false);
}

/// Prints `text` and a newline on stderr (see the module docs).
pub fn note(text: fmt::Arguments<'_>) {
    write_to(std::io::stderr().lock(), &STDERR_CLOSED, text, true);
}

/// `println!` that stops printing, instead of panicking, once stdout is closed.
macro_rules! say {
    () => { $crate::cli::console::say(format_args!("")) };
    ($($t:tt)*) => { $crate::cli::console::say(format_args!($($t)*)) };
}

/// `print!` that stops printing, instead of panicking, once stdout is closed.
macro_rules! say_raw {
    ($($t:tt)*) => { $crate::cli::console::say_raw(format_args!($($t)*)) };
}

/// `eprintln!` that stops printing, instead of panicking, once stderr is closed.
macro_rules! note {
    () => { $crate::cli::console::note(format_args!("")) };
    ($($t:tt)*) => { $crate::cli::console::note(format_args!($($t)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader went away, as a pipe after `head -1` exits.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A closed stream is marked and then left alone, with no panic; an open one is written.
    #[test]
    fn a_closed_stream_stops_printing_without_a_panic() {
        let closed = AtomicBool::new(false);
        write_to(Closed, &closed, format_args!("epoch {}", 1), true);
        assert!(closed.load(Ordering::Relaxed));
        let mut buf = Vec::new();
        let open = AtomicBool::new(false);
        write_to(&mut buf, &open, format_args!("epoch {}", 2), true);
        write_to(&mut buf, &open, format_args!("x"), false);
        assert_eq!(buf, b"epoch 2\nx");
        assert!(!open.load(Ordering::Relaxed));
    }
}
