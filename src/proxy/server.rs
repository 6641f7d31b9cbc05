//! The host side of the proxy: it takes connections the container's
//! forwarder hands over (forward.rs), reads what the client asks for
//! (HTTP `CONNECT`, a plain HTTP request, or SOCKS5), judges it by the
//! allowlist (rules.rs) before and after resolving, connects on the
//! host, and relays. Nothing is intercepted: TLS stays end to end.
//! A refusal is answered (HTTP 403 with a one-line body naming the host
//! and the option that would allow it; SOCKS "not allowed") and logged.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::log::Log;
use super::rules::{Refusal, Rules, Target, in_any};
use crate::sys;

/// The byte a forwarder sends with the client's socket attached.
pub const HANDOVER: u8 = b'F';
/// Connections served at once; more wait (a command cannot make the proxy
/// run out of descriptors).
const MAX_CLIENTS: usize = 256;
/// How long a client may take to say where it wants to go.
const ASK_LIMIT: Duration = Duration::from_secs(30);
/// How long connecting on the host may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(15);
/// The longest request head read.
const MAX_HEAD: usize = 64 << 10;
/// Relay buffers: large enough that a bulk transfer is not bound by
/// system calls.
const RELAY_BUFFER: usize = 128 << 10;
/// A relayed connection on which nothing moved either way for this long
/// is closed.
const IDLE_LIMIT: Duration = Duration::from_secs(600);

/// What one proxy serves with.
pub struct Proxy {
    pub rules: Rules,
    pub log: Log,
}

/// Serves connections on `listener` until the task is dropped.
pub async fn serve(listener: UnixListener, proxy: Arc<Proxy>) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let conn = match listener.accept().await {
            Ok((conn, _)) => conn,
            Err(_) => {
                // Out of descriptors, say: do not spin on it.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            if let Ok(client) = take_client(conn).await {
                let _ = serve_client(client, &proxy).await;
            }
            drop(permit);
        });
    }
}

/// The client socket a forwarder handed over on `conn`.
async fn take_client(conn: UnixStream) -> io::Result<TcpStream> {
    let (n, mut fds, byte) = within(ASK_LIMIT, async {
        loop {
            conn.readable().await?;
            let mut buf = [0u8; 1];
            match conn.try_io(Interest::READABLE, || {
                sys::recv_with_fds(conn.as_fd(), &mut buf)
            }) {
                Ok((n, fds)) => return Ok::<_, io::Error>((n, fds, buf[0])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await?;
    if n != 1 || byte != HANDOVER || fds.len() != 1 {
        return Err(io::Error::other("not a handover"));
    }
    let fd: OwnedFd = fds.remove(0);
    // Only a connection the listener accepted: its other end is a
    // process in the container, which goes when its call ends (a command
    // handing over both ends of a pair would hold a client forever).
    if !sys::is_stream_socket(fd.as_fd()) {
        return Err(io::Error::other("not a stream socket"));
    }
    let std = std::net::TcpStream::from(fd);
    if std.local_addr().ok() != Some(super::listen_addr()) {
        return Err(io::Error::other("not a connection to the proxy's listener"));
    }
    std.set_nonblocking(true)?;
    TcpStream::from_std(std)
}

/// `f`, or a timeout error once `limit` has passed.
async fn within<T>(limit: Duration, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Where a client asked to go, and how it asked.
enum Ask {
    Connect {
        host: String,
        port: u16,
    },
    /// A plain HTTP request, with its head rewritten for the origin.
    Http {
        host: String,
        port: u16,
        head: Vec<u8>,
    },
    Socks {
        host: String,
        port: u16,
    },
}

impl Ask {
    fn dest(&self) -> (&str, u16) {
        match self {
            Ask::Connect { host, port }
            | Ask::Http { host, port, .. }
            | Ask::Socks { host, port } => (host, *port),
        }
    }
}

/// Why a client's request was not served.
enum Failure {
    Refused(Refusal),
    Unreachable(String),
    /// Not a request we understand; the reason, for an HTTP client.
    Malformed(String),
}

async fn serve_client(mut client: TcpStream, proxy: &Proxy) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let first = within(ASK_LIMIT, read_some(&mut client, &mut buf)).await?;
    if first == 0 {
        return Ok(());
    }
    let socks = buf[0] == 5;
    let asked = within(ASK_LIMIT, async {
        if socks {
            socks_request(&mut client, &mut buf).await
        } else {
            http_request(&mut client, &mut buf).await
        }
    })
    .await?;
    let (ask, rest) = match asked {
        Ok(found) => found,
        Err(why) => return answer(&mut client, socks, Failure::Malformed(why)).await,
    };
    let (host, port) = ask.dest();
    let mut upstream = match open(proxy, host, port).await {
        Ok(u) => u,
        Err(f) => {
            match &f {
                Failure::Refused(r) => proxy.log.refused(r),
                Failure::Unreachable(why) => proxy.log.unreachable(host, port, why),
                Failure::Malformed(_) => {}
            }
            return answer(&mut client, socks, f).await;
        }
    };
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    match ask {
        Ask::Connect { .. } => {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?;
        }
        Ask::Socks { .. } => {
            client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        }
        Ask::Http { head, .. } => upstream.write_all(&head).await?,
    }
    if !rest.is_empty() {
        upstream.write_all(&rest).await?;
    }
    relay(client, upstream, IDLE_LIMIT).await
}

/// Copies both ways until both are done, or nothing has moved either way
/// for `idle` (a connection nobody uses does not hold a slot forever).
async fn relay(client: TcpStream, upstream: TcpStream, idle: Duration) -> io::Result<()> {
    let start = tokio::time::Instant::now();
    let moved = AtomicU64::new(0);
    let watched = |inner| Watched {
        inner,
        start,
        moved: &moved,
    };
    let (mut client, mut upstream) = (watched(client), watched(upstream));
    let copy = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut upstream,
        RELAY_BUFFER,
        RELAY_BUFFER,
    );
    tokio::pin!(copy);
    loop {
        tokio::select! {
            done = &mut copy => return done.map(drop),
            _ = tokio::time::sleep(idle / 4) => {
                let last = Duration::from_millis(moved.load(Ordering::Relaxed));
                if start.elapsed().saturating_sub(last) >= idle {
                    return Ok(());
                }
            }
        }
    }
}

/// A stream that records when it last read anything (milliseconds since
/// `start`).
struct Watched<'a> {
    inner: TcpStream,
    start: tokio::time::Instant,
    moved: &'a AtomicU64,
}

impl tokio::io::AsyncRead for Watched<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let now = self.start.elapsed().as_millis() as u64;
            self.moved.store(now, Ordering::Relaxed);
        }
        r
    }
}

impl tokio::io::AsyncWrite for Watched<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 4096];
    let n = s.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Judges, resolves, judges each address and connects.
async fn open(proxy: &Proxy, host: &str, port: u16) -> Result<TcpStream, Failure> {
    let addrs: Vec<SocketAddr> = match proxy.rules.target(host, port).map_err(Failure::Refused)? {
        Target::Addr(a) => vec![SocketAddr::new(a, port)],
        Target::Name(name) => {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|e| Failure::Unreachable(format!("cannot resolve {name}: {e}")))?
                .collect();
            // The host's own services are not reached by name either;
            // if they cannot be listed, nothing is.
            let local = sys::local_networks().map_err(|e| {
                Failure::Unreachable(format!("cannot list this host's addresses: {e}"))
            })?;
            let mut allowed = Vec::new();
            let mut refusal = None;
            for a in found {
                let ip = a.ip().to_canonical();
                match proxy.rules.address(&name, ip, port, in_any(ip, &local)) {
                    Ok(()) => allowed.push(SocketAddr::new(ip, port)),
                    Err(r) => refusal = refusal.or(Some(r)),
                }
            }
            if allowed.is_empty() {
                return Err(match refusal {
                    Some(r) => Failure::Refused(r),
                    None => Failure::Unreachable(format!("{name} has no address")),
                });
            }
            allowed
        }
    };
    let mut last = String::new();
    for a in addrs {
        match tokio::time::timeout(CONNECT_LIMIT, TcpStream::connect(a)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = format!("cannot connect to {a}: {e}"),
            Err(_) => last = format!("cannot connect to {a}: timed out after {CONNECT_LIMIT:?}"),
        }
    }
    Err(Failure::Unreachable(last))
}

/// Tells the client why its request was not served, and closes.
async fn answer(client: &mut TcpStream, socks: bool, f: Failure) -> io::Result<()> {
    if socks {
        // RFC 1928: 2 not allowed by ruleset, 4 host unreachable, 1 failure.
        let code = match f {
            Failure::Refused(_) => 2,
            Failure::Unreachable(_) => 4,
            Failure::Malformed(_) => 1,
        };
        return client.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await;
    }
    let (status, body) = match f {
        Failure::Refused(r) => ("403 Forbidden", format!("lectic-nix-sandbox refused {r}")),
        Failure::Unreachable(why) => ("502 Bad Gateway", format!("lectic-nix-sandbox: {why}")),
        Failure::Malformed(why) => ("400 Bad Request", format!("lectic-nix-sandbox: {why}")),
    };
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}\n",
        body.len() + 1
    );
    client.write_all(text.as_bytes()).await?;
    let _ = client.shutdown().await;
    Ok(())
}

/// Reads a SOCKS5 greeting and CONNECT request (RFC 1928, no
/// authentication); answers the greeting. Returns where to, and any bytes
/// read past the request.
async fn socks_request(
    c: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<Result<(Ask, Vec<u8>), String>> {
    fill(c, buf, 2).await?;
    let methods = 2 + buf[1] as usize;
    fill(c, buf, methods).await?;
    if !buf[2..methods].contains(&0) {
        c.write_all(&[5, 0xff]).await?;
        return Ok(Err("SOCKS5 without authentication only".into()));
    }
    c.write_all(&[5, 0]).await?;
    buf.drain(..methods);
    fill(c, buf, 5).await?;
    if buf[0] != 5 || buf[1] != 1 {
        // Only CONNECT (no BIND, no UDP ASSOCIATE): 7 command not supported.
        c.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(Err("only SOCKS5 CONNECT".into()));
    }
    let (host, end) = match buf[3] {
        1 => {
            fill(c, buf, 10).await?;
            let a: [u8; 4] = buf[4..8].try_into().unwrap();
            (IpAddr::from(a).to_string(), 8)
        }
        4 => {
            fill(c, buf, 22).await?;
            let a: [u8; 16] = buf[4..20].try_into().unwrap();
            (IpAddr::from(a).to_string(), 20)
        }
        3 => {
            let len = buf[4] as usize;
            fill(c, buf, 5 + len + 2).await?;
            (
                String::from_utf8_lossy(&buf[5..5 + len]).into_owned(),
                5 + len,
            )
        }
        _ => return Ok(Err("an unknown SOCKS5 address type".into())),
    };
    let port = u16::from_be_bytes([buf[end], buf[end + 1]]);
    let rest = buf.split_off(end + 2);
    Ok(Ok((Ask::Socks { host, port }, rest)))
}

/// Reads until `buf` holds `n` bytes.
async fn fill(c: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
    while buf.len() < n {
        if read_some(c, buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// Reads an HTTP request head: `CONNECT host:port`, or a request whose
/// target is an absolute `http://` URI or a path with a Host header.
/// Returns where to, and the bytes past the head.
async fn http_request(
    c: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<Result<(Ask, Vec<u8>), String>> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Ok(Err("the request head is too long".into()));
        }
        if read_some(c, buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    };
    let rest = buf.split_off(end);
    Ok(parse_http(buf).map(|ask| (ask, rest)))
}

/// Parses a request head (see `http_request`).
fn parse_http(head: &[u8]) -> Result<Ask, String> {
    let text = std::str::from_utf8(head).map_err(|_| "a request head that is not text")?;
    // A lone CR or LF, or another control character, would split a line
    // differently for us and for the origin.
    if text
        .split("\r\n")
        .any(|l| l.chars().any(|c| c.is_control() && c != '\t'))
    {
        return Err("a request head with control characters".into());
    }
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err("not an HTTP request".into());
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return Err("not an HTTP/1 request".into());
    }
    let headers: Vec<(&str, &str)> = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim(), v.trim())))
        .collect();
    let is_host = |n: &str| n.eq_ignore_ascii_case("host");
    if headers.iter().filter(|(n, _)| is_host(n)).count() > 1 {
        return Err("more than one Host header".into());
    }
    if method == "CONNECT" {
        let (host, port) = split_authority(target, None)?;
        return Ok(Ask::Connect { host, port });
    }
    let (authority, path) = if let Some(rest) = target.strip_prefix("http://") {
        // The authority ends at the path, query or fragment, whichever
        // comes first (`http://a.test#@b.test/` names a.test).
        match rest.find(['/', '?', '#']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (rest[..i].to_owned(), &rest[i..]),
            Some(i) => (rest[..i].to_owned(), "/"),
            None => (rest.to_owned(), "/"),
        }
    } else if target.starts_with('/') {
        let host = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.to_string())
            .ok_or("a request without a host")?;
        (host, target)
    } else if target.contains("://") {
        return Err("only http:// requests go through as plain requests; use CONNECT (HTTPS_PROXY) for others".into());
    } else {
        return Err("a request target that is neither a URI nor a path".into());
    };
    let authority = authority
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, a)| a);
    let (host, port) = split_authority(authority, Some(80))?;
    // To the origin: its own form of the request, one request per
    // connection (a second one on it could name another host).
    // Host names what was judged (RFC 9112: a proxy replaces it with the
    // target's), so it cannot name another site on the same server.
    let mut out = format!("{method} {path} {version}\r\nHost: {authority}\r\n");
    for (n, v) in &headers {
        let drop = [
            "host",
            "proxy-connection",
            "proxy-authorization",
            "connection",
            "keep-alive",
        ]
        .iter()
        .any(|d| n.eq_ignore_ascii_case(d));
        if !drop {
            out += &format!("{n}: {v}\r\n");
        }
    }
    out += "Connection: close\r\n\r\n";
    Ok(Ask::Http {
        host,
        port,
        head: out.into_bytes(),
    })
}

/// `host:port` (IPv6 in brackets) into its parts; `default` when no port.
fn split_authority(a: &str, default: Option<u16>) -> Result<(String, u16), String> {
    let bad = || {
        format!(
            "cannot read a host and port from {:?}",
            a.chars().take(100).collect::<String>()
        )
    };
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        (h, after.strip_prefix(':'))
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    let port = match (port, default) {
        (Some(p), _) => p.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?,
        (None, Some(d)) => d,
        (None, None) => return Err(bad()),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// Binds the proxy's socket at `dir/name` (through the directory's
/// descriptor, so a long cache path does not hit the 108-byte limit), for
/// every user (the container's may be another uid; the directory is ours).
pub fn bind(dir: &std::path::Path, name: &str) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;
    let d = std::fs::File::open(dir)?;
    let path = std::path::PathBuf::from(format!("/proc/self/fd/{}/{name}", d.as_raw_fd()));
    let _ = std::fs::remove_file(&path);
    let l = std::os::unix::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(text: &str) -> Result<Ask, String> {
        parse_http(text.as_bytes())
    }

    #[test]
    fn http_requests_name_their_destination_and_go_on_in_origin_form() {
        let Ok(Ask::Connect { host, port }) =
            http("CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!((host.as_str(), port), ("pypi.org", 443));
        let Ok(Ask::Connect { host, port }) = http("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n") else {
            panic!()
        };
        assert_eq!((host.as_str(), port), ("::1", 8443));
        let Ok(Ask::Http { host, port, head }) = http(
            "GET http://a.test:8080/x?y HTTP/1.1\r\nHost: a.test:8080\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        ) else {
            panic!()
        };
        assert_eq!((host.as_str(), port), ("a.test", 8080));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /x?y HTTP/1.1\r\nHost: a.test:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let Ok(Ask::Http { host, port, head }) = http("GET /p HTTP/1.0\r\nHost: b.test\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!((host.as_str(), port), ("b.test", 80));
        assert!(
            String::from_utf8(head)
                .unwrap()
                .starts_with("GET /p HTTP/1.0\r\nHost: b.test\r\n")
        );
        let Ok(Ask::Http { host, .. }) = http("GET http://a.test#@b.test/ HTTP/1.1\r\n\r\n") else {
            panic!()
        };
        assert_eq!(host, "a.test");
        let Ok(Ask::Http { host, .. }) = http("GET http://u:p@a.test/x HTTP/1.1\r\n\r\n") else {
            panic!()
        };
        assert_eq!(host, "a.test");
        let Ok(Ask::Http { head, .. }) = http("GET http://c.test HTTP/1.1\r\n\r\n") else {
            panic!()
        };
        assert!(
            String::from_utf8(head)
                .unwrap()
                .starts_with("GET / HTTP/1.1\r\nHost: c.test\r\n")
        );
        for bad in [
            "GET https://x.test/ HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "CONNECT x.test HTTP/1.1\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "GET http://x.test:0/ HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a.test\nX: forged\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\x1b[2J.test\r\n\r\n",
        ] {
            assert!(http(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_plain_request_names_the_judged_host_whatever_its_host_header_says() {
        let Ok(Ask::Http { host, head, .. }) =
            http("GET http://a.test/admin HTTP/1.1\r\nHost: other.test\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(host, "a.test");
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /admin HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        );
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A connected pair of TCP streams on loopback.
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[test]
    fn a_relay_on_which_nothing_moves_ends_after_its_idle_limit() {
        runtime().block_on(async {
            let (client, _client_end) = tcp_pair().await;
            let (upstream, mut upstream_end) = tcp_pair().await;
            let relay = tokio::spawn(relay(client, upstream, Duration::from_millis(200)));
            upstream_end.write_all(b"x").await.unwrap();
            let ended = tokio::time::timeout(Duration::from_secs(5), relay).await;
            assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
        });
    }

    #[test]
    fn only_a_connection_to_the_listener_is_taken_as_a_client() {
        runtime().block_on(async {
            // One end of a socket pair, a UDP socket, a TCP connection
            // elsewhere: none is a client.
            let (pair, _other) = std::os::unix::net::UnixStream::pair().unwrap();
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let (tcp, _peer) = tcp_pair().await;
            let tcp = tcp.into_std().unwrap();
            let not_ours = "not a connection to the proxy's listener";
            for (fd, why) in [
                (pair.as_fd(), not_ours),
                (udp.as_fd(), "not a stream socket"),
                (tcp.as_fd(), not_ours),
            ] {
                let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
                theirs.set_nonblocking(true).unwrap();
                sys::send_with_fds(ours.as_fd(), &[HANDOVER], &[fd]).unwrap();
                let e = take_client(UnixStream::from_std(theirs).unwrap())
                    .await
                    .unwrap_err();
                assert_eq!(e.to_string(), why);
            }
        });
    }
}
