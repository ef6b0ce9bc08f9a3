//! The client's address behind load balancers. `X-Forwarded-For` and `Forwarded` (RFC 7239) are
//! only believed when the TCP peer is one of the configured trusted proxies: anyone else could
//! write anything in them. A chain of proxies is walked from the right (the hop nearest to us),
//! skipping trusted proxies; the first address that is not one is the client.
//!
//! The headers are the client's input, so their reading is bounded: at most [`MAX_HOPS`] hops
//! are looked at, each hop is parsed once, and the walk stops at the first hop it cannot parse.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// The most hops of a forwarding chain looked at, from the right.
pub const MAX_HOPS: usize = 16;
/// The longest hop (one `X-Forwarded-For` entry, one `Forwarded` element) parsed.
const MAX_HOP_CHARS: usize = 256;

/// The proxies whose forwarding headers are believed (`CHRONICLE_TRUSTED_PROXIES`): addresses
/// and networks, IPv4 or IPv6. Empty (the default): no header is believed, the client is the
/// TCP peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

/// A `CHRONICLE_TRUSTED_PROXIES` entry that is neither an address nor a network.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not an IP address or a network (expected a comma-separated list such as `10.0.0.0/8, 192.0.2.7, fd00::/8`)"
)]
pub struct BadProxy(String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// A comma-separated list of addresses (`192.0.2.7`, `::1`) and networks (`10.0.0.0/8`,
    /// `fd00::/8`); white space around entries is ignored, empty entries are not allowed.
    fn from_str(list: &str) -> Result<TrustedProxies, BadProxy> {
        let networks = list
            .split(',')
            .map(str::trim)
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| canonical_net(net).trunc())
                    .map_err(|_| BadProxy(entry.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { networks })
    }
}

impl TrustedProxies {
    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The client of a request that came from `peer` with `headers`: `peer` itself unless it is
    /// a trusted proxy; else the nearest hop of the forwarding chain that is not a trusted
    /// proxy. `X-Forwarded-For` is read when present, else `Forwarded`: a proxy that writes
    /// `Forwarded` must drop `X-Forwarded-For` from its clients (and the other way round).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let xff: Vec<&str> = header_values(headers, "x-forwarded-for");
        if !xff.is_empty() {
            return self.walk(peer, hops_from_right(&xff).map(parse_xff_hop));
        }
        let forwarded = header_values(headers, "forwarded");
        self.walk(peer, hops_from_right(&forwarded).map(parse_forwarded_hop))
    }

    /// From the right: the first hop that is not trusted. An unreadable hop ends the walk at
    /// the last address known (the trusted proxy that wrote the unreadable entry), as does the
    /// end of the chain or [`MAX_HOPS`].
    fn walk(&self, peer: IpAddr, hops: impl Iterator<Item = Option<IpAddr>>) -> IpAddr {
        let mut nearest = peer;
        for hop in hops.take(MAX_HOPS) {
            let Some(ip) = hop else { break };
            nearest = ip.to_canonical();
            if !self.trusts(nearest) {
                break;
            }
        }
        nearest
    }
}

/// The values of every `name` header line, in order (repeated lines form one list).
fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .map(|value| value.to_str().unwrap_or(""))
        .collect()
}

/// The comma-separated entries of `lines`, last first.
fn hops_from_right<'a>(lines: &'a [&'a str]) -> impl Iterator<Item = &'a str> + 'a {
    lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(','))
        .map(str::trim)
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`).
fn parse_xff_hop(hop: &str) -> Option<IpAddr> {
    if hop.len() > MAX_HOP_CHARS {
        return None;
    }
    parse_node(hop)
}

/// One `Forwarded` element (`for=192.0.2.60;proto=http;by=203.0.113.43`): its `for` node.
/// `unknown` and obfuscated identifiers (`_hidden`) are not addresses.
fn parse_forwarded_hop(element: &str) -> Option<IpAddr> {
    if element.len() > MAX_HOP_CHARS {
        return None;
    }
    let node = element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim())
    })?;
    let node = node
        .strip_prefix('"')
        .and_then(|quoted| quoted.strip_suffix('"'))
        .unwrap_or(node);
    parse_node(node)
}

/// An address, bare or with a port, IPv6 possibly in brackets.
fn parse_node(node: &str) -> Option<IpAddr> {
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| {
            node.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
}

/// IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`) as the IPv4 networks they are, so that
/// they match peers the way those are compared (canonical form).
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
            Some(v4) if v6.prefix_len() >= 96 => {
                IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net)
            }
            _ => net,
        },
        IpNet::V4(_) => net,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn proxies(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_list_takes_addresses_and_networks_of_both_families() {
        let trusted = proxies(" 10.0.0.0/8, 192.0.2.7 ,fd00::/8, ::1");
        for yes in ["10.1.2.3", "192.0.2.7", "fd00::5", "::1", "::ffff:10.9.9.9"] {
            assert!(trusted.trusts(ip(yes)), "{yes}");
        }
        for no in ["11.0.0.1", "192.0.2.8", "fe80::1", "127.0.0.1"] {
            assert!(!trusted.trusts(ip(no)), "{no}");
        }
        assert!(proxies("::ffff:192.0.2.0/120").trusts(ip("192.0.2.9")));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.1,", "", "1.2.3.4/8/1"] {
            let err = bad.parse::<TrustedProxies>().unwrap_err();
            assert!(err.to_string().contains('`'), "{bad}: {err}");
        }
        assert_eq!(
            "10.0.0.1, nope".parse::<TrustedProxies>().unwrap_err(),
            BadProxy("nope".into())
        );
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let trusted = proxies("10.0.0.0/8");
        let forged = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        assert_eq!(
            trusted.client(ip("203.0.113.5"), &forged),
            ip("203.0.113.5")
        );
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &forged),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_chain_is_walked_from_the_right_past_trusted_proxies() {
        let trusted = proxies("10.0.0.0/8");
        // The client forged the first entry; our proxies appended the rest.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.3")]);
        assert_eq!(trusted.client(ip("10.0.0.2"), &chain), ip("198.51.100.7"));
        // Repeated header lines are one list, in order.
        let split = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "198.51.100.7:4711, 10.0.0.3"),
        ]);
        assert_eq!(trusted.client(ip("10.0.0.2"), &split), ip("198.51.100.7"));
        // No header: the peer is the client (say, the proxy's own health check).
        assert_eq!(
            trusted.client(ip("10.0.0.2"), &headers(&[])),
            ip("10.0.0.2")
        );
        // Every hop trusted: the leftmost one.
        let inner = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.3")]);
        assert_eq!(trusted.client(ip("10.0.0.2"), &inner), ip("10.0.0.9"));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let trusted = proxies("10.0.0.0/8, fd00::/8");
        let forwarded = headers(&[(
            "forwarded",
            r#"for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https, For=10.0.0.3;by=10.0.0.2"#,
        )]);
        assert_eq!(
            trusted.client(ip("fd00::2"), &forwarded),
            ip("2001:db8:cafe::17")
        );
        // With both, X-Forwarded-For wins.
        let both = headers(&[
            ("forwarded", "for=1.1.1.1"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(trusted.client(ip("10.0.0.2"), &both), ip("198.51.100.7"));
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_proxy_that_wrote_it() {
        let trusted = proxies("10.0.0.0/8");
        for value in ["1.1.1.1, garbage, 10.0.0.3", "1.1.1.1, , 10.0.0.3"] {
            let chain = headers(&[("x-forwarded-for", value)]);
            assert_eq!(
                trusted.client(ip("10.0.0.2"), &chain),
                ip("10.0.0.3"),
                "{value}"
            );
        }
        let unknown = headers(&[("forwarded", "for=unknown, for=_hidden")]);
        assert_eq!(trusted.client(ip("10.0.0.2"), &unknown), ip("10.0.0.2"));
        let long = format!("1.1.1.1, {}", "9".repeat(10_000));
        let chain = headers(&[("x-forwarded-for", &long)]);
        assert_eq!(trusted.client(ip("10.0.0.2"), &chain), ip("10.0.0.2"));
    }

    #[test]
    fn a_long_chain_is_looked_at_only_so_far() {
        let trusted = proxies("10.0.0.0/8");
        let mut hops = vec!["198.51.100.7".to_string()];
        hops.extend((0..10_000).map(|n| format!("10.0.{}.{}", n / 250, n % 250 + 1)));
        let chain = headers(&[("x-forwarded-for", &hops.join(","))]);
        // MAX_HOPS trusted hops read, then the walk stops at the last one it looked at.
        let client = trusted.client(ip("10.0.0.2"), &chain);
        assert!(trusted.trusts(client), "{client}");
        assert_ne!(client, ip("198.51.100.7"));
    }
}
