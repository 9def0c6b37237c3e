//! Where reports go, and what went wrong writing them. Reporters cannot stop a
//! run when their output fails (a full disk, a closed pipe): a [`Checked`] writer
//! remembers the first error, and the command turns it into its exit code when
//! the run ends. `println!` is never used for program output: it panics on
//! EPIPE and ENOSPC.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// The first write error of one output, shared with whoever checks it.
#[derive(Debug, Clone, Default)]
pub struct WriteStatus(Arc<Mutex<Option<(io::ErrorKind, String)>>>);

impl WriteStatus {
    fn record(&self, e: &io::Error) {
        if let Ok(mut slot) = self.0.lock() {
            if slot.is_none() {
                *slot = Some((e.kind(), e.to_string()));
            }
        }
    }

    /// The first error, if a write failed.
    pub fn error(&self) -> Option<io::Error> {
        let slot = self.0.lock().ok()?;
        slot.as_ref().map(|(k, m)| io::Error::new(*k, m.clone()))
    }

    pub fn failed(&self) -> bool {
        self.0.lock().is_ok_and(|s| s.is_some())
    }
}

/// A writer that records its first error in a [`WriteStatus`]. After a failure
/// it writes nothing more: one full disk is one error, not one per line.
pub struct Checked<W: Write> {
    inner: W,
    status: WriteStatus,
}

impl<W: Write> Checked<W> {
    pub fn new(inner: W) -> (Checked<W>, WriteStatus) {
        let status = WriteStatus::default();
        (
            Checked {
                inner,
                status: status.clone(),
            },
            status,
        )
    }

    fn check<T>(&self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r {
            if e.kind() != io::ErrorKind::Interrupted {
                self.status.record(e);
            }
        }
        r
    }
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.status.failed() {
            return Err(io::Error::other("an earlier write failed"));
        }
        let r = self.inner.write(buf);
        self.check(r)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.status.failed() {
            return Err(io::Error::other("an earlier write failed"));
        }
        let r = self.inner.write_all(buf);
        self.check(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.status.failed() {
            return Err(io::Error::other("an earlier write failed"));
        }
        let r = self.inner.flush();
        self.check(r)
    }
}

/// Whether an error only says that the reader went away (`multiarch plan | head
/// -1`): not worth a message.
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_first_error_is_kept_and_later_writes_stop() {
        let (mut w, status) = Checked::new(Full);
        assert!(w.write_all(b"a").is_err());
        assert!(w.write_all(b"b").is_err());
        let e = status.error().expect("an error");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert!(e.to_string().contains("No space left"), "{e}");
        assert!(status.failed(), "still failed after asking");
    }

    #[test]
    fn a_good_writer_records_nothing() {
        let (mut w, status) = Checked::new(Vec::new());
        w.write_all(b"hello").unwrap();
        w.flush().unwrap();
        assert!(!status.failed());
        assert_eq!(w.inner, b"hello");
    }
}
