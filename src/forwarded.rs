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

/// Which forwarding header names the client (`http.client_address_header`): only that one
/// is read, and only from a trusted proxy; the other is ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressHeader {
    /// `X-Forwarded-For: client, proxy1` (nginx `$proxy_add_x_forwarded_for`, HAProxy
    /// `option forwardfor`, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl AddressHeader {
    /// The header's name.
    pub fn name(self) -> &'static str {
        match self {
            AddressHeader::XForwardedFor => "x-forwarded-for",
            AddressHeader::Forwarded => "forwarded",
        }
    }

    /// The addresses of one header line, in order (unparsable elements are kept as `None`:
    /// they end the chain of addresses the proxies vouch for).
    fn addresses(self, line: &str) -> Vec<Option<IpAddr>> {
        match self {
            AddressHeader::XForwardedFor => line.split(',').map(|a| parse_addr(a.trim())).collect(),
            AddressHeader::Forwarded => forwarded_for(line),
        }
    }
}

/// The trusted proxies of `http.trusted_proxies` and the header they name the client in.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    ranges: Vec<Cidr>,
    header: AddressHeader,
}

impl TrustedProxies {
    /// From validated settings (unparsable entries are left out; `Config::validate` refuses them).
    pub fn new(list: &[String], header: AddressHeader) -> Self {
        TrustedProxies {
            ranges: list.iter().filter_map(|s| Cidr::parse(s)).collect(),
            header,
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|c| c.contains(ip))
    }

    /// The header to read (`None` when no proxy is trusted: nothing is read).
    pub fn header(&self) -> Option<&'static str> {
        (!self.ranges.is_empty()).then(|| self.header.name())
    }

    /// The client's address: the peer, unless the peer is a trusted proxy; then, reading
    /// every line of the configured header in order as one list, the rightmost address
    /// that is not itself a trusted proxy. Each proxy appends the address it got the
    /// request from, so everything left of the last untrusted address is the client's own
    /// word. An element that is not an address stops the walk: what is left of it cannot be
    /// vouched for, and the address right of it (a trusted proxy's peer) is taken.
    pub fn client<'a>(&self, peer: IpAddr, lines: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let chain: Vec<Option<IpAddr>> = lines.into_iter().flat_map(|l| self.header.addresses(l)).collect();
        let mut client = peer;
        for ip in chain.into_iter().rev() {
            let Some(ip) = ip.map(canonical) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// The key that counts requests of one client address: the address itself for IPv4, its
/// /64 for IPv6 (one host usually holds a whole /64).
pub fn limit_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The `for=` addresses of a `Forwarded` header line (RFC 7239), in order; an element
/// without one, or with an obfuscated or unknown one, is `None`.
fn forwarded_for(header: &str) -> Vec<Option<IpAddr>> {
    header
        .split(',')
        .map(|element| {
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
        let xff = TrustedProxies::new(
            &["127.0.0.1".into(), "10.0.0.0/8".into()],
            AddressHeader::XForwardedFor,
        );
        // (peer, X-Forwarded-For lines, client)
        let cases: &[(&str, &[&str], &str)] = &[
            ("203.0.113.9", &["1.1.1.1"], "203.0.113.9"),
            ("127.0.0.1", &["198.51.100.7"], "198.51.100.7"),
            ("127.0.0.1", &["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
            ("127.0.0.1", &["198.51.100.7, 10.0.0.5"], "198.51.100.7"),
            ("127.0.0.1", &[], "127.0.0.1"),
            ("127.0.0.1", &["garbage"], "127.0.0.1"),
            ("127.0.0.1", &["6.6.6.6, garbage, 10.0.0.5"], "10.0.0.5"),
            ("127.0.0.1", &["10.0.0.1, 10.0.0.2"], "10.0.0.1"),
            // HAProxy's `option forwardfor` adds its own line after the client's: every
            // line counts, in order, so the client's line cannot win.
            ("127.0.0.1", &["6.6.6.6", "198.51.100.7"], "198.51.100.7"),
            (
                "127.0.0.1",
                &["6.6.6.6, 7.7.7.7", "198.51.100.7, 10.0.0.9"],
                "198.51.100.7",
            ),
            ("::ffff:127.0.0.1", &["198.51.100.7"], "198.51.100.7"),
        ];
        for (peer, lines, want) in cases {
            assert_eq!(
                xff.client(ip(peer), lines.iter().copied()),
                ip(want),
                "{peer} {lines:?}"
            );
        }
        // nginx appends to X-Forwarded-For and passes the client's own Forwarded through:
        // with the default header, a Forwarded line is never read (the caller reads only
        // `header()`), and with `forwarded` it is the only one.
        assert_eq!(xff.header(), Some("x-forwarded-for"));
        let fwd = TrustedProxies::new(
            &["127.0.0.1".into(), "10.0.0.0/8".into()],
            AddressHeader::Forwarded,
        );
        assert_eq!(fwd.header(), Some("forwarded"));
        let cases: &[(&str, &[&str], &str)] = &[
            ("127.0.0.1", &["for=198.51.100.7;proto=https"], "198.51.100.7"),
            (
                "127.0.0.1",
                &[r#"for="[2001:db8::1]:4711", for=10.1.1.1"#],
                "2001:db8::1",
            ),
            ("127.0.0.1", &["for=6.6.6.6", "for=198.51.100.7"], "198.51.100.7"),
            ("127.0.0.1", &["for=6.6.6.6, for=unknown"], "127.0.0.1"),
            ("203.0.113.9", &["for=1.1.1.1"], "203.0.113.9"),
        ];
        for (peer, lines, want) in cases {
            assert_eq!(
                fwd.client(ip(peer), lines.iter().copied()),
                ip(want),
                "{peer} {lines:?}"
            );
        }
        let none = TrustedProxies::default();
        assert_eq!(none.header(), None);
        assert_eq!(none.client(ip("127.0.0.1"), ["1.1.1.1"]), ip("127.0.0.1"));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(limit_key(ip("198.51.100.7")), "198.51.100.7");
        assert_eq!(limit_key(ip("::ffff:198.51.100.7")), "198.51.100.7");
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            limit_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            limit_key(ip("2001:db8:1:2::9"))
        );
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), limit_key(ip("2001:db8:1:2::1")));
    }
}
