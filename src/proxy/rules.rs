//! The allowlist: what `--allow-host PATTERN` means, and the decisions
//! the proxy makes with it. Names are matched before anything is
//! resolved; every address a name resolves to is judged again, so an
//! allowed name cannot lead to the host's loopback, the LAN or a cloud
//! metadata service unless that address was allowed by itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which ports a pattern allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ports {
    /// No port given: HTTP and HTTPS.
    Web,
    One(u16),
    /// `:*`.
    Any,
}

impl Ports {
    fn allows(self, port: u16) -> bool {
        match self {
            Ports::Web => port == 80 || port == 443,
            Ports::One(p) => p == port,
            Ports::Any => true,
        }
    }

    fn covers(self, other: Ports) -> bool {
        match (self, other) {
            (Ports::Any, _) => true,
            (Ports::Web, Ports::Web) => true,
            (Ports::Web, Ports::One(p)) => self.allows(p),
            (Ports::One(a), Ports::One(b)) => a == b,
            _ => false,
        }
    }
}

/// Which hosts a pattern allows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// Exactly this name (lowercase, no trailing dot).
    Name(String),
    /// Every name under this one (`*.example.com`), not the name itself.
    Under(String),
    /// Addresses in this network (a single address is a /32 or /128).
    Net(IpAddr, u8),
}

/// One `--allow-host` pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pattern {
    pub host: Host,
    pub ports: Ports,
}

impl Pattern {
    /// Parses `pypi.org`, `*.githubusercontent.com`, `api.example.com:8443`,
    /// `host:*`, `10.0.0.5`, `10.0.0.0/8:5432`, `[::1]:8080`, `fd00::/8`.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let bad = |why: &str| {
            format!(
                "--allow-host {text:?}: {why}; give a host name (pypi.org), a wildcard (*.example.com), an address or network (10.0.0.5, 10.0.0.0/8), each optionally with :PORT or :*"
            )
        };
        let t = text.trim();
        let (host, ports) = if let Some(rest) = t.strip_prefix('[') {
            let (inner, after) = rest.split_once(']').ok_or_else(|| bad("an unclosed ["))?;
            let ports = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            };
            (inner, ports)
        } else if t.matches(':').count() > 1 {
            (t, None) // a bare IPv6 address or network
        } else {
            match t.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (t, None),
            }
        };
        let ports = match ports {
            None => Ports::Web,
            Some("*") => Ports::Any,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Ports::One(n),
                _ => return Err(bad("the port is not a number from 1 to 65535")),
            },
        };
        let host = if let Some((addr, bits)) = host.split_once('/') {
            let addr: IpAddr = addr.parse().map_err(|_| bad("not a network"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| bad("the prefix length is out of range"))?;
            Host::Net(mask(addr, bits), bits)
        } else if let Ok(addr) = host.parse::<IpAddr>() {
            Host::Net(addr, if addr.is_ipv4() { 32 } else { 128 })
        } else if let Some(parent) = host.strip_prefix("*.") {
            Host::Under(name(parent).ok_or_else(|| bad("not a host name after *."))?)
        } else if host == "*" {
            return Err(bad(
                "* alone would allow every host: --allow-net gives the whole network",
            ));
        } else {
            Host::Name(name(host).ok_or_else(|| bad("not a host name"))?)
        };
        Ok(Pattern { host, ports })
    }

    /// Whether this pattern allows everything `other` allows (the system
    /// policy's list caps the user's this way).
    pub fn covers(&self, other: &Pattern) -> bool {
        let host = match (&self.host, &other.host) {
            (Host::Name(a), Host::Name(b)) => a == b,
            (Host::Under(a), Host::Name(b)) => is_under(b, a),
            (Host::Under(a), Host::Under(b)) => a == b || is_under(b, a),
            (Host::Net(a, n), Host::Net(b, m)) => n <= m && in_net(*b, *a, *n),
            _ => false,
        };
        host && self.ports.covers(other.ports)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = |a: &IpAddr, n: &u8| (a.is_ipv4() && *n == 32) || *n == 128;
        let host = match &self.host {
            Host::Name(n) => n.clone(),
            Host::Under(n) => format!("*.{n}"),
            Host::Net(a, n) if full(a, n) => a.to_string(),
            Host::Net(a, n) => format!("{a}/{n}"),
        };
        let v6 = matches!(self.host, Host::Net(IpAddr::V6(_), _));
        match (self.ports, v6) {
            (Ports::Web, _) => write!(f, "{host}"),
            (Ports::One(p), true) => write!(f, "[{host}]:{p}"),
            (Ports::One(p), false) => write!(f, "{host}:{p}"),
            (Ports::Any, true) => write!(f, "[{host}]:*"),
            (Ports::Any, false) => write!(f, "{host}:*"),
        }
    }
}

/// A host name as matched: lowercase, without a trailing dot; None if it
/// is not one (letters, digits, `-` and `_` in dot-separated labels).
pub fn name(text: &str) -> Option<String> {
    let n = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (n.len() <= 253 && n.split('.').all(label_ok)).then_some(n)
}

fn is_under(name: &str, parent: &str) -> bool {
    name.len() > parent.len() + 1
        && name.ends_with(parent)
        && name.as_bytes()[name.len() - parent.len() - 1] == b'.'
}

fn mask(addr: IpAddr, bits: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// Whether `addr` lies in one of `nets` (address, prefix length).
pub fn in_any(addr: IpAddr, nets: &[(IpAddr, u8)]) -> bool {
    let addr = addr.to_canonical();
    nets.iter()
        .any(|&(net, bits)| in_net(addr, mask(net, bits), bits))
}

fn in_net(addr: IpAddr, net: IpAddr, bits: u8) -> bool {
    addr.is_ipv4() == net.is_ipv4() && mask(addr, bits) == net
}

/// What kind of address only an explicit allowance opens, if `addr` is one.
pub fn special(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) => special_v4(a),
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return special_v4(v4);
            }
            let s = a.segments();
            match s[0] {
                _ if a.is_loopback() => Some("a loopback address"),
                _ if a.is_unspecified() => Some("an unspecified address"),
                x if x & 0xfe00 == 0xfc00 => Some("a private (unique local) address"),
                x if x & 0xffc0 == 0xfe80 => Some("a link-local address"),
                x if x & 0xff00 == 0xff00 => Some("a multicast address"),
                0x2001 if s[1] == 0xdb8 => Some("a documentation address"),
                0x100 if s[1..4] == [0; 3] => Some("a discard address"),
                // NAT64 and IPv4-compatible forms carry an IPv4 address.
                0x64 if s[1] == 0xff9b => special_v4(Ipv4Addr::from(u128::from(a) as u32)),
                0 if s[..6] == [0; 6] => special_v4(Ipv4Addr::from(u128::from(a) as u32)),
                _ => None,
            }
        }
    }
}

fn special_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [o0, o1, ..] = a.octets();
    Some(match (o0, o1) {
        (127, _) => "a loopback address",
        (0, _) => "an unspecified address",
        (10, _) | (192, 168) => "a private address",
        (172, x) if x & 0xf0 == 16 => "a private address",
        (169, 254) => "a link-local address (cloud metadata lives there)",
        (100, x) if x & 0xc0 == 64 => "a shared (carrier-grade NAT) address",
        (198, 18 | 19) => "a benchmarking address",
        (192, 0) if a.octets()[2] == 0 => "an IETF protocol address",
        (192, 0) if a.octets()[2] == 2 => "a documentation address",
        (198, 51) if a.octets()[2] == 100 => "a documentation address",
        (203, 0) if a.octets()[2] == 113 => "a documentation address",
        (x, _) if x >= 224 => "a multicast or reserved address",
        _ => return None,
    })
}

/// Why the proxy refused a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub host: String,
    pub port: u16,
    pub why: String,
    /// The pattern that would allow it.
    pub fix: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; allow it with --allow-host {} (or allow_hosts: in the policy file)",
            hostport(&self.host, self.port),
            self.why,
            self.fix
        )
    }
}

/// `host:port`, with IPv6 addresses in brackets.
pub fn hostport(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The allowlist of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules(pub Vec<Pattern>);

/// Where a connection may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A name to resolve (already lowercase, without a trailing dot).
    Name(String),
    Addr(IpAddr),
}

impl Rules {
    /// Parses, sorts and dedups the patterns (their order means nothing,
    /// so it does not change the container).
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a String>) -> Result<Rules, String> {
        let mut v = texts
            .into_iter()
            .map(|t| Pattern::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        v.sort();
        v.dedup();
        Ok(Rules(v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The patterns, one per line: what the proxy process reads.
    pub fn to_lines(&self) -> String {
        self.0.iter().map(|p| format!("{p}\n")).collect()
    }

    /// The first judgement, on what the client asked for: a name must be
    /// listed (by name or wildcard); an address must be in a listed
    /// network.
    pub fn target(&self, host: &str, port: u16) -> Result<Target, Refusal> {
        let refuse = |host: String, why: String, fix: String| Refusal {
            host,
            port,
            why,
            fix,
        };
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(addr) = bare.parse::<IpAddr>() {
            let addr = addr.to_canonical();
            return if self.allows_addr(addr, port) {
                Ok(Target::Addr(addr))
            } else {
                Err(refuse(
                    addr.to_string(),
                    "an address that is not on the allowlist (ask for a name, or allow the address)"
                        .into(),
                    fix_for(&addr.to_string(), port, addr.is_ipv6()),
                ))
            };
        }
        let Some(n) = name(bare) else {
            return Err(refuse(
                // Shown in the log and to whoever reads it: never raw
                // control characters (a newline, a terminal escape).
                bare.chars()
                    .take(60)
                    .flat_map(char::escape_default)
                    .collect(),
                "not a host name".into(),
                "NAME".into(),
            ));
        };
        let listed = |p: &&Pattern| match &p.host {
            Host::Name(x) => *x == n,
            Host::Under(x) => is_under(&n, x),
            Host::Net(..) => false,
        };
        if self.0.iter().filter(listed).any(|p| p.ports.allows(port)) {
            return Ok(Target::Name(n));
        }
        let why = if self.0.iter().any(|p| listed(&p)) {
            "the allowlist has it, but not for this port"
        } else {
            "not on the allowlist"
        };
        let fix = fix_for(&n, port, false);
        Err(refuse(n, why.into(), fix))
    }

    /// The second judgement, on each address a name resolved to: a
    /// loopback, private, link-local (metadata) or other special address,
    /// or one of this host's own or its link's (`local`), must itself be
    /// allowed.
    pub fn address(&self, name: &str, addr: IpAddr, port: u16, local: bool) -> Result<(), Refusal> {
        let addr = addr.to_canonical();
        let kind =
            special(addr).or(local.then_some("an address of this host or of a network it is on"));
        match kind {
            Some(kind) if !self.allows_addr(addr, port) => Err(Refusal {
                host: name.to_owned(),
                port,
                why: format!("it resolves to {addr}, {kind}"),
                fix: fix_for(&addr.to_string(), port, addr.is_ipv6()),
            }),
            _ => Ok(()),
        }
    }

    fn allows_addr(&self, addr: IpAddr, port: u16) -> bool {
        // An IPv4-mapped IPv6 address is its IPv4 address.
        let addr = match addr {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            a => a,
        };
        self.0.iter().any(|p| match p.host {
            Host::Net(net, bits) => in_net(addr, net, bits) && p.ports.allows(port),
            _ => false,
        })
    }
}

/// The pattern that would allow `host` on `port`.
fn fix_for(host: &str, port: u16, v6: bool) -> String {
    match (port, v6) {
        (80 | 443, false) => host.to_owned(),
        (_, false) => format!("{host}:{port}"),
        (_, true) => format!("[{host}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Rules {
        Rules::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn patterns_parse_and_print_in_one_canonical_form() {
        for (given, shown) in [
            ("PyPI.org.", "pypi.org"),
            ("*.githubusercontent.com", "*.githubusercontent.com"),
            ("api.example.com:8443", "api.example.com:8443"),
            ("github.com:*", "github.com:*"),
            ("10.1.2.3", "10.1.2.3"),
            ("10.1.2.3/8:5432", "10.0.0.0/8:5432"),
            ("[::1]:8080", "[::1]:8080"),
            ("fd00::/8", "fd00::/8"),
        ] {
            assert_eq!(Pattern::parse(given).unwrap().to_string(), shown, "{given}");
        }
        for bad in [
            "",
            "*",
            "a b",
            "x.com:0",
            "x.com:70000",
            "x.com:http",
            "10.0.0.0/33",
            "[::1",
            "*.",
            "a/b",
        ] {
            let e = Pattern::parse(bad).unwrap_err();
            assert!(e.starts_with("--allow-host"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bare_name_allows_web_ports_and_a_wildcard_only_subdomains() {
        let r = rules(&["pypi.org", "*.example.com", "api.test:8443", "git.test:*"]);
        assert_eq!(
            r.target("pypi.org", 443),
            Ok(Target::Name("pypi.org".into()))
        );
        assert_eq!(
            r.target("PYPI.ORG.", 80),
            Ok(Target::Name("pypi.org".into()))
        );
        assert!(
            r.target("pypi.org", 22)
                .unwrap_err()
                .why
                .contains("not for this port")
        );
        assert!(r.target("a.b.example.com", 443).is_ok());
        let parent = r.target("example.com", 443).unwrap_err();
        assert_eq!(parent.why, "not on the allowlist");
        assert_eq!(parent.fix, "example.com");
        assert!(r.target("badexample.com", 443).is_err());
        assert!(r.target("api.test", 8443).is_ok());
        assert_eq!(r.target("api.test", 443).unwrap_err().fix, "api.test");
        assert!(r.target("git.test", 22).is_ok());
        assert_eq!(r.target("evil.test", 22).unwrap_err().fix, "evil.test:22");
        assert!(r.target("bad host", 80).is_err());
        let e = r.target("x\n2026 refused\x1b[2J", 80).unwrap_err();
        assert_eq!(e.host, "x\\n2026 refused\\u{1b}[2J");
    }

    #[test]
    fn addresses_are_reached_only_when_allowed_as_addresses() {
        let r = rules(&["db.test", "127.0.0.1:8080", "10.0.0.0/8:*"]);
        assert!(r.target("127.0.0.1", 8080).is_ok());
        assert!(r.target("127.0.0.1", 80).is_err());
        assert!(r.target("10.9.9.9", 22).is_ok());
        assert!(
            r.target("93.184.216.34", 443).is_err(),
            "a public literal too"
        );
        // A listed name that resolves to a special address.
        let e = r
            .address("db.test", "127.0.0.1".parse().unwrap(), 80, true)
            .unwrap_err();
        assert_eq!(e.why, "it resolves to 127.0.0.1, a loopback address");
        assert_eq!(e.fix, "127.0.0.1");
        assert!(
            r.address("db.test", "127.0.0.1".parse().unwrap(), 8080, true)
                .is_ok()
        );
        assert!(
            r.address("db.test", "93.184.216.34".parse().unwrap(), 80, false)
                .is_ok()
        );
        // A public address the host has itself: its own services.
        let own = r
            .address("db.test", "93.184.216.34".parse().unwrap(), 80, true)
            .unwrap_err();
        assert_eq!(
            own.why,
            "it resolves to 93.184.216.34, an address of this host or of a network it is on"
        );
        // An IPv4-mapped form is judged, and named in the fix, as IPv4.
        let mapped = r
            .address("db.test", "::ffff:93.184.216.34".parse().unwrap(), 80, true)
            .unwrap_err();
        assert_eq!(mapped.fix, "93.184.216.34");
        assert!(r.target("::ffff:10.1.2.3", 22).is_ok());
        let nets = [
            ("192.0.2.7".parse().unwrap(), 24),
            ("2001:db8:1::5".parse().unwrap(), 64),
        ];
        assert!(in_any("192.0.2.200".parse().unwrap(), &nets));
        assert!(in_any("::ffff:192.0.2.1".parse().unwrap(), &nets));
        assert!(in_any("2001:db8:1::77".parse().unwrap(), &nets));
        assert!(!in_any("192.0.3.1".parse().unwrap(), &nets));
        assert!(
            r.address("db.test", "::ffff:10.1.1.1".parse().unwrap(), 5, false)
                .is_ok()
        );
        for special_one in [
            "169.254.169.254",
            "192.168.1.1",
            "172.20.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "198.18.0.2",
            "203.0.113.9",
            "2001:db8::1",
        ] {
            let addr: IpAddr = special_one.parse().unwrap();
            assert!(special(addr).is_some(), "{special_one}");
            assert!(r.address("x", addr, 443, false).is_err(), "{special_one}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "172.32.0.1"] {
            assert_eq!(special(public.parse().unwrap()), None, "{public}");
        }
    }

    #[test]
    fn a_capping_pattern_covers_only_what_it_allows_itself() {
        let p = |s: &str| Pattern::parse(s).unwrap();
        assert!(p("*.example.com").covers(&p("a.example.com")));
        assert!(p("*.example.com").covers(&p("*.a.example.com")));
        assert!(!p("*.example.com").covers(&p("example.com")));
        assert!(p("example.com").covers(&p("example.com:443")));
        assert!(!p("example.com").covers(&p("example.com:22")));
        assert!(!p("example.com").covers(&p("example.com:*")));
        assert!(p("example.com:*").covers(&p("example.com:22")));
        assert!(p("10.0.0.0/8").covers(&p("10.1.0.0/16")));
        assert!(!p("10.1.0.0/16").covers(&p("10.0.0.0/8")));
        assert!(!p("10.0.0.0/8").covers(&p("x.com")));
    }
}
