//! The byte stream under one WebSocket: a plain `TcpStream`, or TLS (rustls) over one.
//!
//! The connection task drives tungstenite's sync API over non-blocking `try_read`/`try_write`
//! and readiness futures. [`Sock`] offers exactly that surface for both transports. For TLS,
//! a `rustls::ServerConnection` (sans-IO) sits between the socket and tungstenite: reads pull
//! TLS records from the socket and hand out plaintext, writes buffer plaintext and push
//! records out; `flush` pushes what the socket did not take (and reports `WouldBlock`, so the
//! connection waits for writability exactly as for plain TCP).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use parking_lot::Mutex;
use tokio::net::TcpStream;

/// Plaintext rustls may hold for sending before writes report `WouldBlock`.
const TLS_SEND_BUFFER: usize = 256 * 1024;

/// A connection's byte stream.
pub enum Sock {
    Plain(TcpStream),
    Tls(Box<TlsSock>),
}

impl std::fmt::Debug for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sock::Plain(_) => f.write_str("Sock::Plain"),
            Sock::Tls(_) => f.write_str("Sock::Tls"),
        }
    }
}

/// TLS over a non-blocking socket.
pub struct TlsSock {
    tcp: TcpStream,
    tls: Mutex<rustls::ServerConnection>,
}

/// `Read`/`Write` over `try_read`/`try_write` of a tokio socket.
struct Raw<'a>(&'a TcpStream);

impl Read for Raw<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Raw<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsSock {
    pub fn new(tcp: TcpStream, mut tls: rustls::ServerConnection) -> TlsSock {
        tls.set_buffer_limit(Some(TLS_SEND_BUFFER));
        TlsSock {
            tcp,
            tls: Mutex::new(tls),
        }
    }

    /// Push buffered TLS records to the socket until done or `WouldBlock`.
    fn push(tcp: &TcpStream, tls: &mut rustls::ServerConnection) -> io::Result<()> {
        while tls.wants_write() {
            match tls.write_tls(&mut Raw(tcp)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tls = self.tls.lock();
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: treat as end of stream.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match tls.read_tls(&mut Raw(&self.tcp)) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        // Try to get the alert out before failing.
                        let _ = Self::push(&self.tcp, &mut tls);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                    // Key updates, session tickets, alerts: best effort, the next flush retries.
                    match Self::push(&self.tcp, &mut tls) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut tls = self.tls.lock();
        match Self::push(&self.tcp, &mut tls) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let n = tls.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match Self::push(&self.tcp, &mut tls) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(n)
    }

    fn flush(&self) -> io::Result<()> {
        let mut tls = self.tls.lock();
        Self::push(&self.tcp, &mut tls)
    }

    /// Plaintext already decrypted and waiting (the socket may not be readable then).
    fn has_plaintext(&self) -> bool {
        let mut tls = self.tls.lock();
        tls.process_new_packets()
            .map(|s| s.plaintext_bytes_to_read() > 0)
            .unwrap_or(true)
    }
}

impl Sock {
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Plain(t) => t.try_read(buf),
            Sock::Tls(t) => t.try_read(buf),
        }
    }

    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Plain(t) => t.try_write(buf),
            Sock::Tls(t) => t.try_write(buf),
        }
    }

    /// Push bytes a transport buffered itself (TLS records); `WouldBlock` when the socket is full.
    pub fn flush(&self) -> io::Result<()> {
        match self {
            Sock::Plain(_) => Ok(()),
            Sock::Tls(t) => t.flush(),
        }
    }

    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Sock::Plain(t) => t.readable().await,
            Sock::Tls(t) => {
                if t.has_plaintext() {
                    return Ok(());
                }
                t.tcp.readable().await
            }
        }
    }

    pub async fn writable(&self) -> io::Result<()> {
        match self {
            Sock::Plain(t) => t.writable().await,
            Sock::Tls(t) => t.tcp.writable().await,
        }
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Sock::Plain(t) => t.peer_addr(),
            Sock::Tls(t) => t.tcp.peer_addr(),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Sock::Tls(_))
    }
}
