//! Who the client of a forwarded request is (SPEC §11): the connection's peer, unless the peer
//! is a trusted proxy, in which case `X-Forwarded-For` (the rightmost address that is not
//! itself a trusted proxy) or, without it, `X-Real-IP`.
//!
//! Pure: header values in, an address out. It must not read anything else of the request,
//! allocate, or fail: a value it cannot read is not believed.

use std::net::{IpAddr, SocketAddr};

use crate::rules::compile::IpTable;

/// The client's address as the forwarded request tells it.
///
/// - `peer`: the connection's remote address (`None` when there is none, e.g. a Unix socket).
/// - `forwarded_for`: the `X-Forwarded-For` header values, in the order they came.
/// - `real_ip`: reads the `X-Real-IP` header; called only when no `X-Forwarded-For` names an
///   address.
///
/// A peer outside `trusted` is the client, whatever the headers say. From a trusted peer, the
/// `X-Forwarded-For` chain is read from the right: each trusted address is a proxy that
/// recorded the hop before it; the first that is not trusted is the client. An entry that is
/// not an address ends the walk at the last hop that was believed (its proxy wrote nonsense);
/// a chain of trusted addresses only gives its leftmost.
pub fn client_address<'h>(
    peer: Option<IpAddr>,
    trusted: &IpTable,
    forwarded_for: impl DoubleEndedIterator<Item = &'h str> + Clone,
    real_ip: impl FnOnce() -> Option<&'h str>,
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let entries = || {
        forwarded_for
            .clone()
            .rev()
            .flat_map(|header| header.rsplit(','))
            .map(str::trim_ascii)
            .filter(|entry| !entry.is_empty())
    };
    if entries().next().is_some() {
        let mut nearest = peer;
        for entry in entries() {
            match parse_address(entry) {
                Some(ip) if !trusted.contains(ip) => return Some(ip),
                Some(ip) => nearest = ip,
                None => return Some(nearest),
            }
        }
        return Some(nearest);
    }
    Some(
        real_ip()
            .and_then(|v| parse_address(v.trim_ascii()))
            .unwrap_or(peer),
    )
}

/// An address as proxies write it: `203.0.113.9`, `2001:db8::1`, and with a port
/// (`203.0.113.9:41000`, `[2001:db8::1]:41000`) or brackets (`[2001:db8::1]`). IPv4-mapped
/// IPv6 addresses are read as IPv4.
fn parse_address(text: &str) -> Option<IpAddr> {
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            text.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<IpAddr>().ok())
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::compile::parse_network;

    fn table(ranges: &[&str]) -> IpTable {
        IpTable::from_networks(ranges.iter().map(|r| parse_network(r).unwrap()))
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

    fn client(peer: &str, xff: &[&str], real_ip: Option<&str>) -> Option<IpAddr> {
        let proxies = table(&["127.0.0.0/8", "::1/128", "10.0.0.0/8"]);
        client_address(ip(peer), &proxies, xff.iter().copied(), || real_ip)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            client("198.51.100.7", &["203.0.113.9"], Some("203.0.113.10")),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy() {
        assert_eq!(
            client("127.0.0.1", &["1.1.1.1, 203.0.113.9, 10.0.0.2"], None),
            ip("203.0.113.9")
        );
        // Spread over several headers, in order.
        assert_eq!(
            client("127.0.0.1", &["1.1.1.1, 203.0.113.9", "10.0.0.2"], None),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(
                "127.0.0.1",
                &["1.1.1.1", "203.0.113.9,10.0.0.2,10.0.0.3"],
                None
            ),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_gives_its_leftmost_address() {
        assert_eq!(
            client("127.0.0.1", &["10.0.0.5, 10.0.0.2"], None),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn an_entry_that_is_not_an_address_is_not_believed_nor_anything_left_of_it() {
        assert_eq!(
            client("127.0.0.1", &["203.0.113.9, unknown, 10.0.0.2"], None),
            ip("10.0.0.2")
        );
        assert_eq!(client("127.0.0.1", &["garbage"], None), ip("127.0.0.1"));
    }

    #[test]
    fn x_real_ip_counts_only_without_x_forwarded_for() {
        assert_eq!(
            client("127.0.0.1", &[], Some("203.0.113.9")),
            ip("203.0.113.9")
        );
        assert_eq!(
            client("127.0.0.1", &["198.51.100.7"], Some("203.0.113.9")),
            ip("198.51.100.7")
        );
        // An empty X-Forwarded-For names no address.
        assert_eq!(
            client("127.0.0.1", &[" , "], Some("203.0.113.9")),
            ip("203.0.113.9")
        );
        assert_eq!(client("127.0.0.1", &[], Some("nonsense")), ip("127.0.0.1"));
        assert_eq!(client("127.0.0.1", &[], None), ip("127.0.0.1"));
    }

    #[test]
    fn addresses_with_ports_brackets_or_mapped_to_ipv6_are_read() {
        for (entry, expected) in [
            ("203.0.113.9:41000", "203.0.113.9"),
            ("[2001:db8::1]:41000", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
            (" 2001:db8::1 ", "2001:db8::1"),
        ] {
            assert_eq!(client("127.0.0.1", &[entry], None), ip(expected), "{entry}");
        }
        // A peer mapped to IPv6 is trusted as its IPv4 address.
        let proxies = table(&LOOPBACK);
        assert_eq!(
            client_address(
                ip("::ffff:127.0.0.1"),
                &proxies,
                ["203.0.113.9"].into_iter(),
                || None
            ),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn no_peer_address_is_no_client_address() {
        let proxies = table(&LOOPBACK);
        assert_eq!(
            client_address(None, &proxies, ["203.0.113.9"].into_iter(), || None),
            None
        );
    }

    #[test]
    fn trusting_no_one_believes_no_header() {
        let nobody = table(&[]);
        assert_eq!(
            client_address(
                ip("127.0.0.1"),
                &nobody,
                ["203.0.113.9"].into_iter(),
                || None
            ),
            ip("127.0.0.1")
        );
    }
}
