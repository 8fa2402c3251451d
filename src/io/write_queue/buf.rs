//! What a queue takes and where it writes: the owned buffers ([`WriteBuf`]),
//! the stream handle the queue holds ([`WriteTarget`]), and the [`Sink`] the
//! drain loop sends to (the socket, or a scripted writer in the unit tests).

use std::fmt;
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::net::{OwnedWriteHalf, TcpStream};

/// An owned buffer for [`WriteQueue::push`](super::WriteQueue::push): made from `Vec<u8>`,
/// `Box<[u8]>`, `&'static [u8]`, `&'static str`, `String`, or `Rc<[u8]>` (to
/// send one buffer to many queues without copying it).
///
/// [`push`](super::WriteQueue::push) takes any of these with `impl Into<WriteBuf>`;
/// naming `WriteBuf` is only needed to mix them in one collection.
///
/// # Examples
/// ```
/// use std::rc::Rc;
/// use xev::io::WriteBuf;
///
/// let header: Rc<[u8]> = Rc::from(&b"HTTP/1.1 200 OK\r\n"[..]);
/// let bufs = [
///     WriteBuf::from("static text"),
///     WriteBuf::from(b"static bytes"),
///     WriteBuf::from(format!("{} formatted", 1)),
///     WriteBuf::from(vec![1u8, 2, 3]),
///     WriteBuf::from(vec![4u8, 5].into_boxed_slice()),
///     WriteBuf::from(header.clone()), // shares the bytes, does not copy them
/// ];
/// assert_eq!(bufs[2].as_slice(), b"1 formatted");
/// assert_eq!(bufs[5].as_slice().as_ptr(), header.as_ptr());
/// ```
pub struct WriteBuf(Repr);

enum Repr {
    Vec(Vec<u8>),
    Boxed(Box<[u8]>),
    Static(&'static [u8]),
    Shared(Rc<[u8]>),
    /// In the queue, the length of a buffer lent to a send that owns it
    /// until it completes (under `IoUring`); never seen outside the queue.
    Lent(usize),
}

impl WriteBuf {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Vec(vec) => vec,
            Repr::Boxed(boxed) => boxed,
            Repr::Static(slice) => slice,
            Repr::Shared(shared) => shared,
            Repr::Lent(_) => &[],
        }
    }

    /// How many bytes it holds (or held, while lent).
    pub(super) fn len(&self) -> usize {
        match &self.0 {
            Repr::Lent(len) => *len,
            _ => self.as_slice().len(),
        }
    }

    /// Takes the buffer out, leaving its length in its place.
    pub(super) fn lend(&mut self) -> WriteBuf {
        let len = self.len();
        std::mem::replace(self, WriteBuf(Repr::Lent(len)))
    }

    /// The buffer as the ring takes it: the same bytes, not a copy.
    #[cfg(target_os = "linux")]
    pub(super) fn into_owned(self) -> xev_uring::OwnedBuf {
        use xev_uring::OwnedBuf;
        match self.0 {
            Repr::Vec(vec) => OwnedBuf::Vec(vec),
            Repr::Boxed(boxed) => OwnedBuf::Boxed(boxed),
            Repr::Static(slice) => OwnedBuf::Static(slice),
            Repr::Shared(shared) => OwnedBuf::Shared(shared),
            Repr::Lent(_) => OwnedBuf::Static(&[]),
        }
    }

    /// A buffer the ring gave back.
    #[cfg(target_os = "linux")]
    pub(super) fn from_owned(buf: xev_uring::OwnedBuf) -> WriteBuf {
        use xev_uring::OwnedBuf;
        WriteBuf(match buf {
            OwnedBuf::Vec(vec) => Repr::Vec(vec),
            OwnedBuf::Boxed(boxed) => Repr::Boxed(boxed),
            OwnedBuf::Static(slice) => Repr::Static(slice),
            OwnedBuf::Shared(shared) => Repr::Shared(shared),
        })
    }
}

impl fmt::Debug for WriteBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBuf")
            .field("len", &self.as_slice().len())
            .finish()
    }
}

impl From<Vec<u8>> for WriteBuf {
    fn from(vec: Vec<u8>) -> WriteBuf {
        WriteBuf(Repr::Vec(vec))
    }
}

impl From<Box<[u8]>> for WriteBuf {
    fn from(boxed: Box<[u8]>) -> WriteBuf {
        WriteBuf(Repr::Boxed(boxed))
    }
}

impl From<&'static [u8]> for WriteBuf {
    fn from(slice: &'static [u8]) -> WriteBuf {
        WriteBuf(Repr::Static(slice))
    }
}

impl<const N: usize> From<&'static [u8; N]> for WriteBuf {
    fn from(array: &'static [u8; N]) -> WriteBuf {
        WriteBuf(Repr::Static(array))
    }
}

impl From<&'static str> for WriteBuf {
    fn from(text: &'static str) -> WriteBuf {
        WriteBuf(Repr::Static(text.as_bytes()))
    }
}

impl From<String> for WriteBuf {
    fn from(text: String) -> WriteBuf {
        WriteBuf(Repr::Vec(text.into_bytes()))
    }
}

impl From<Rc<[u8]>> for WriteBuf {
    fn from(shared: Rc<[u8]>) -> WriteBuf {
        WriteBuf(Repr::Shared(shared))
    }
}

/// What a [`WriteQueue`](super::WriteQueue) writes to: an `Rc<TcpStream>` or an
/// [`OwnedWriteHalf`] (both convert with `.into()`).
///
/// With an `Rc<TcpStream>`, the caller keeps the stream to read from it.
/// With an `OwnedWriteHalf`, the queue owns the write side: once the queue is
/// dropped and drained (or [aborted](super::WriteQueue::abort) and dropped),
/// the half is dropped, and the peer reads end of stream.
///
/// # Examples
/// ```
/// use xev::io::WriteQueue;
/// # use xev::net::{TcpListener, TcpStream};
/// # xev::rt::block_on(async {
/// # let listener = TcpListener::bind("127.0.0.1:0")?;
/// # let client = TcpStream::connect(listener.local_addr()?).await?;
/// # let (server, _) = listener.accept().await?;
/// let (_read, write) = server.into_split();
/// let queue = WriteQueue::new(write); // `OwnedWriteHalf` into `WriteTarget`
/// queue.push("bye").await?;
/// drop(queue); // releases the half: the write side is shut down
///
/// let mut got = [0; 8];
/// client.read_exact(&mut got[..3]).await?;
/// assert_eq!(&got[..3], b"bye");
/// assert_eq!(client.read(&mut got).await?, 0); // end of stream
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
pub struct WriteTarget(Target);

enum Target {
    Stream(Rc<TcpStream>),
    Half(OwnedWriteHalf),
}

impl WriteTarget {
    pub(super) fn stream(&self) -> &TcpStream {
        match &self.0 {
            Target::Stream(stream) => stream,
            Target::Half(half) => half.stream(),
        }
    }
}

impl fmt::Debug for WriteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WriteTarget").field(self.stream()).finish()
    }
}

impl From<Rc<TcpStream>> for WriteTarget {
    fn from(stream: Rc<TcpStream>) -> WriteTarget {
        WriteTarget(Target::Stream(stream))
    }
}

impl From<OwnedWriteHalf> for WriteTarget {
    fn from(half: OwnedWriteHalf) -> WriteTarget {
        WriteTarget(Target::Half(half))
    }
}

/// Where the drain loop sends: the socket, or a scripted writer in tests.
pub(super) trait Sink {
    fn poll_send(&self, cx: &mut Context<'_>, slices: &[IoSlice<'_>]) -> Poll<io::Result<usize>>;
}

impl Sink for TcpStream {
    fn poll_send(&self, cx: &mut Context<'_>, slices: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match slices {
            [one] => self.poll_write_priv(cx, one),
            many => self.poll_write_vectored_priv(cx, many),
        }
    }
}
