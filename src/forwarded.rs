//! The client's address behind trusted proxies: CIDR ranges, and the `Forwarded` /
//! `X-Forwarded-For` headers believed only when the peer is a trusted proxy.

use std::net::IpAddr;

/// An address range (`10.0.0.0/8`, `::1/128`) or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// `a.b.c.d`, `a.b.c.d/n` or the IPv6 forms; `None` if it is neither.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { net: addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let net = canonical(self.net);
        let bits = u32::from(self.bits);
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let full = (bits / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0
}

/// The trusted proxies of `http.trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// From validated settings (unparsable entries are left out; `Config::validate` refuses them).
    pub fn new(list: &[String]) -> Self {
        TrustedProxies(list.iter().filter_map(|s| Cidr::parse(s)).collect())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy; then the last
    /// address in the forwarding chain that is not itself a trusted proxy (each proxy
    /// appends the address it got the request from, so earlier entries are the client's
    /// word, believed only as far as trusted proxies vouch for them).
    pub fn client(&self, peer: IpAddr, forwarded: Option<&str>, x_forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let chain: Vec<IpAddr> = match (forwarded, x_forwarded_for) {
            (Some(f), _) => forwarded_for(f),
            (None, Some(x)) => x.split(',').filter_map(|a| parse_addr(a.trim())).collect(),
            (None, None) => Vec::new(),
        };
        let mut client = peer;
        for ip in chain.into_iter().rev() {
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// The `for=` addresses of a `Forwarded` header (RFC 7239), in order.
fn forwarded_for(header: &str) -> Vec<IpAddr> {
    header
        .split(',')
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_addr(v.trim().trim_matches('"')))?
            })
        })
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:5678`, `[::1]`, `[::1]:80`, `::1`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    s.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_what_they_should() {
        let cases = [
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.0/25", "192.168.1.127", true),
            ("192.168.1.0/25", "192.168.1.128", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "::ffff:127.0.0.1", true),
            ("::1", "::1", true),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("10.0.0.0/8", "::1", false),
        ];
        for (range, addr, want) in cases {
            assert_eq!(
                Cidr::parse(range).unwrap().contains(ip(addr)),
                want,
                "{range} {addr}"
            );
        }
        for bad in ["", "10.0.0.0/33", "::/129", "localhost", "10.0.0/8", "1.2.3.4/x"] {
            assert!(Cidr::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn forwarding_headers_are_believed_only_from_trusted_proxies() {
        let t = TrustedProxies::new(&["127.0.0.1".into(), "10.0.0.0/8".into()]);
        // (peer, Forwarded, X-Forwarded-For, client)
        let cases = [
            ("203.0.113.9", None, Some("1.1.1.1"), "203.0.113.9"),
            ("127.0.0.1", None, Some("198.51.100.7"), "198.51.100.7"),
            ("127.0.0.1", None, Some("6.6.6.6, 198.51.100.7"), "198.51.100.7"),
            ("127.0.0.1", None, Some("198.51.100.7, 10.0.0.5"), "198.51.100.7"),
            (
                "127.0.0.1",
                Some("for=198.51.100.7;proto=https"),
                Some("6.6.6.6"),
                "198.51.100.7",
            ),
            (
                "127.0.0.1",
                Some(r#"for="[2001:db8::1]:4711", for=10.1.1.1"#),
                None,
                "2001:db8::1",
            ),
            ("127.0.0.1", None, None, "127.0.0.1"),
            ("127.0.0.1", None, Some("garbage"), "127.0.0.1"),
            ("127.0.0.1", None, Some("10.0.0.1, 10.0.0.2"), "10.0.0.1"),
        ];
        for (peer, fwd, xff, want) in cases {
            assert_eq!(t.client(ip(peer), fwd, xff), ip(want), "{peer} {fwd:?} {xff:?}");
        }
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("127.0.0.1"), None, Some("1.1.1.1")),
            ip("127.0.0.1")
        );
    }
}
