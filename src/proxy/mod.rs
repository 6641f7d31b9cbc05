//! `--allow-host`: a command reaches only the hosts it is allowed, through
//! a filtering proxy, and has no network otherwise (`--network none`).
//!
//! Inside the container, a listener on the container's own loopback
//! ([`PORT`], named by the proxy variables of [`env`]) takes each
//! connection and hands its socket (SCM_RIGHTS) over [`SOCKET`], a Unix
//! socket in the read-only state mount, to the proxy on the host
//! (forward.rs): the agent's thread, or the wrapper process where there is
//! no agent. The proxy (server.rs) is this binary running as the user: for
//! a warm container a process of its own that lives as long as the
//! container's init (daemon.rs), for a one-shot call a task of the call.
//! It judges each request by the allowlist (rules.rs) and logs what it
//! refuses (log.rs).

pub mod daemon;
pub mod forward;
pub mod log;
pub mod rules;
pub mod server;

/// The proxy's port on the container's loopback (HTTP and SOCKS5 alike).
pub const PORT: u16 = 3128;
/// Where the forwarder listens inside the container.
pub fn listen_addr() -> std::net::SocketAddr {
    (std::net::Ipv4Addr::LOCALHOST, PORT).into()
}

/// The proxy's socket, in the directory mounted at `watcher::MOUNT`.
pub const SOCKET: &str = "proxy.sock";

/// What tells programs inside to use the proxy: the variables curl, pip,
/// git, npm, Go and most HTTP libraries read, in both cases.
pub fn env() -> Vec<(String, String)> {
    let http = format!("http://{}", listen_addr());
    let socks = format!("socks5h://{}", listen_addr());
    let mut v = Vec::new();
    for (name, value) in [
        ("HTTP_PROXY", http.as_str()),
        ("HTTPS_PROXY", http.as_str()),
        ("ALL_PROXY", socks.as_str()),
        ("NO_PROXY", "localhost,127.0.0.1"),
    ] {
        v.push((name.to_owned(), value.to_owned()));
        v.push((name.to_ascii_lowercase(), value.to_owned()));
    }
    v
}
