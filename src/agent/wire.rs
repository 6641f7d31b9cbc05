//! What a call and the agent say to each other over the agent's socket.
//!
//! On accepting a connection the agent sends `R` 0 (ready): from then on
//! it counts the connection as a call and will not end itself. The call
//! sends one request: [`MAGIC`], a little-endian u32 length, then
//! NUL-terminated fields (cwd, call id, `keep` or empty, argc, argv...,
//! NAME=VALUE...), with its stdin, stdout and stderr attached to the first
//! byte (SCM_RIGHTS). Then each side sends two-byte messages: the call
//! `S` and a signal number, the agent `X` and the exit status (0-255,
//! 128+N for signal N). The agent closes the connection once the command, any stop
//! it was asked for and the call's leftover processes are done. A magic
//! the agent does not know gets `V` and a close.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use crate::sys;

/// Names this protocol; a change of the protocol changes it.
pub const MAGIC: &[u8; 4] = b"LNS2";
/// Requests larger than this are refused (ARG_MAX is 2 MiB).
const MAX_REQUEST: usize = 8 << 20;

/// The two-byte messages around a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// `R` 0, agent to call: the connection counts as a call.
    Ready,
    /// `S` N, call to agent: the call got signal N.
    Signal(u8),
    /// `X` N, agent to call: the command's exit status.
    Exit(u8),
    /// `V` 0, agent to call: the request's magic is not the agent's.
    Mismatch,
    /// A kind neither side sends; ignored where a message is not awaited.
    Other(u8, u8),
}

impl Message {
    pub fn encode(self) -> [u8; 2] {
        match self {
            Message::Ready => [b'R', 0],
            Message::Signal(n) => [b'S', n],
            Message::Exit(n) => [b'X', n],
            Message::Mismatch => [b'V', 0],
            Message::Other(k, v) => [k, v],
        }
    }

    pub fn decode([kind, value]: [u8; 2]) -> Message {
        match kind {
            b'R' => Message::Ready,
            b'S' => Message::Signal(value),
            b'X' => Message::Exit(value),
            b'V' => Message::Mismatch,
            _ => Message::Other(kind, value),
        }
    }
}

/// One call's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cwd: PathBuf,
    pub call_id: String,
    /// Whether the call's processes may outlive it (`--keep-processes`).
    pub keep: bool,
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
}

impl Request {
    /// The request's bytes; None if a field holds a NUL, which would split
    /// it into fields of its own (a variable the caller never set).
    fn encode(&self) -> Option<Vec<u8>> {
        let strings = [self.cwd.as_os_str(), OsStr::new(&self.call_id)];
        let env = self
            .env
            .iter()
            .flat_map(|(k, v)| [k.as_os_str(), v.as_os_str()]);
        let all = strings
            .into_iter()
            .chain(self.argv.iter().map(OsString::as_os_str))
            .chain(env);
        if all.clone().any(|f| f.as_bytes().contains(&0))
            || self.env.iter().any(|(k, _)| k.as_bytes().contains(&b'='))
        {
            return None;
        }
        let mut body = Vec::new();
        let mut field = |b: &[u8]| {
            body.extend_from_slice(b);
            body.push(0);
        };
        field(self.cwd.as_os_str().as_bytes());
        field(self.call_id.as_bytes());
        field(if self.keep { b"keep" } else { b"" });
        field(self.argv.len().to_string().as_bytes());
        for a in &self.argv {
            field(a.as_bytes());
        }
        for (k, v) in &self.env {
            field(&[k.as_bytes(), b"=", v.as_bytes()].concat());
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        Some(out)
    }

    fn decode(body: &[u8]) -> Option<Request> {
        let body = body.strip_suffix(&[0])?;
        let mut fields = body.split(|&b| b == 0);
        let cwd = PathBuf::from(OsStr::from_bytes(fields.next()?));
        let call_id = String::from_utf8(fields.next()?.to_vec()).ok()?;
        let keep = match fields.next()? {
            b"keep" => true,
            b"" => false,
            _ => return None,
        };
        let argc: usize = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
        let argv: Vec<OsString> = fields
            .by_ref()
            .take(argc)
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect();
        if argv.len() != argc || argc == 0 {
            return None;
        }
        let env = fields
            .map(|kv| {
                let eq = kv.iter().position(|&b| b == b'=')?;
                Some((
                    OsString::from_vec(kv[..eq].to_vec()),
                    OsString::from_vec(kv[eq + 1..].to_vec()),
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Request {
            cwd,
            call_id,
            keep,
            argv,
            env,
        })
    }
}

/// Sends the request with our stdin, stdout and stderr attached.
pub fn send_request(sock: &UnixStream, req: &Request) -> io::Result<()> {
    let bytes = req.encode().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a NUL byte (or `=` in a name) in the request",
        )
    })?;
    let (i, o, e) = (io::stdin(), io::stdout(), io::stderr());
    let fds = [i.as_fd(), o.as_fd(), e.as_fd()];
    let sent = sys::send_with_fds(sock.as_fd(), &bytes, &fds)?;
    (&*sock).write_all(&bytes[sent..])
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum BadRequest {
    /// Another protocol's magic: the caller is another version of us.
    Mismatch,
    Malformed(&'static str),
    Io(io::Error),
}

/// Reads a request and the three descriptors that came with it.
pub fn read_request(sock: &UnixStream) -> Result<(Request, [OwnedFd; 3]), BadRequest> {
    let mut head = [0u8; 8];
    let (n, fds) = sys::recv_with_fds(sock.as_fd(), &mut head).map_err(BadRequest::Io)?;
    (&*sock)
        .read_exact(&mut head[n..])
        .map_err(BadRequest::Io)?;
    if &head[..4] != MAGIC {
        return Err(BadRequest::Mismatch);
    }
    let fds: [OwnedFd; 3] = fds
        .try_into()
        .map_err(|_| BadRequest::Malformed("expected stdin, stdout and stderr"))?;
    let len = u32::from_le_bytes(head[4..].try_into().unwrap()) as usize;
    if len > MAX_REQUEST {
        return Err(BadRequest::Malformed("request too large"));
    }
    let mut body = vec![0u8; len];
    (&*sock).read_exact(&mut body).map_err(BadRequest::Io)?;
    let req = Request::decode(&body).ok_or(BadRequest::Malformed("bad request"))?;
    Ok((req, fds))
}

/// Sends a message.
pub fn send(sock: &UnixStream, m: Message) -> io::Result<()> {
    (&*sock).write_all(&m.encode())
}

/// Reads a message; None at a clean end of the connection.
pub fn receive(sock: &UnixStream) -> io::Result<Option<Message>> {
    let mut m = [0u8; 2];
    match (&*sock).read(&mut m[..1])? {
        0 => return Ok(None),
        _ => (&*sock).read_exact(&mut m[1..])?,
    }
    Ok(Some(Message::decode(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            cwd: "/work dir".into(),
            call_id: "abc".into(),
            keep: true,
            argv: vec!["sh".into(), "-c".into(), "echo a=b".into(), "".into()],
            env: vec![("A".into(), "x=y".into()), ("EMPTY".into(), "".into())],
        }
    }

    #[test]
    fn a_request_survives_encoding_including_empty_and_equals_signs() {
        let bytes = request().encode().unwrap();
        assert_eq!(&bytes[..4], MAGIC);
        assert_eq!(Request::decode(&bytes[8..]), Some(request()));
    }

    #[test]
    fn a_nul_in_a_value_cannot_smuggle_a_variable() {
        let mut r = request();
        r.env.push(("A".into(), "x\0LECTIC_INJECTED=evil".into()));
        assert_eq!(r.encode(), None);
        let mut r = request();
        r.argv.push("a\0b".into());
        assert_eq!(r.encode(), None);
    }

    #[test]
    fn malformed_requests_are_refused() {
        for body in [
            &b""[..],
            b"/\0id\0",
            b"/\0id\0\x002\0only-one\0",
            b"/\0id\0\x000\0",
            b"/\0id\0maybe\x001\0sh\0",
        ] {
            assert_eq!(Request::decode(body), None, "{body:?}");
        }
        assert_eq!(Request::decode(b"/\0id\0\x001\0sh\0NOEQUALS\0"), None);
        assert!(Request::decode(b"/\0id\0\x001\0sh\0").is_some());
    }

    #[test]
    fn a_request_and_its_descriptors_cross_a_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        send_request(&a, &request()).unwrap();
        let (req, fds) = read_request(&b).ok().unwrap();
        assert_eq!(req, request());
        assert_eq!(fds.len(), 3);
        send(&b, Message::Exit(7)).unwrap();
        assert_eq!(receive(&a).unwrap(), Some(Message::Exit(7)));
        drop(b);
        assert_eq!(receive(&a).unwrap(), None);
    }

    /// The bytes on the wire, pinned: a change of them must come with a
    /// new [`MAGIC`] (and so a new container: the magic is in its name),
    /// or an agent of the old format would misread a new call.
    #[test]
    fn the_wire_format_is_pinned_to_its_magic() {
        assert_eq!(MAGIC, b"LNS2", "a new format: update the bytes below too");
        let r = Request {
            cwd: "/w".into(),
            call_id: "c1".into(),
            keep: true,
            argv: vec!["true".into()],
            env: vec![("A".into(), "b".into())],
        };
        assert_eq!(
            r.encode().unwrap(),
            b"LNS2\x16\0\0\0/w\0c1\0keep\x001\0true\0A=b\0"
        );
        let pinned = [
            (Message::Ready, *b"R\0"),
            (Message::Signal(15), *b"S\x0f"),
            (Message::Exit(3), *b"X\x03"),
            (Message::Mismatch, *b"V\0"),
        ];
        for (m, bytes) in pinned {
            assert_eq!(m.encode(), bytes);
            assert_eq!(Message::decode(bytes), m);
        }
    }
}
