//! Who the client is: the peer address, or — when the peer is a trusted
//! proxy — the nearest address in `X-Forwarded-For` that is not one of our
//! proxies. Walking from the right means a client cannot pick its own
//! address by prepending entries to the header.

use std::net::IpAddr;

use ipnet::IpNet;

pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else { return peer };
    let mut hops = Vec::new();
    for hop in header.split(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => hops.push(ip),
            // A garbled header is not evidence of anything: use the peer.
            Err(_) => return peer,
        }
    }
    hops.iter().rev().find(|hop| !is_trusted(hop)).or(hops.first()).copied().unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let trusted: Vec<IpNet> = vec!["10.1.0.0/16".parse().unwrap()];
        // An untrusted peer's header is ignored.
        assert_eq!(client_ip(ip("198.51.100.9"), Some("203.0.113.5"), &trusted), ip("198.51.100.9"));
        // Through our proxy: the client is the hop before it.
        assert_eq!(client_ip(ip("10.1.0.4"), Some("203.0.113.5"), &trusted), ip("203.0.113.5"));
        // A client prepending a fake hop does not get to choose.
        assert_eq!(client_ip(ip("10.1.0.4"), Some("1.2.3.4, 203.0.113.5, 10.1.0.9"), &trusted), ip("203.0.113.5"));
        assert_eq!(client_ip(ip("10.1.0.4"), None, &trusted), ip("10.1.0.4"));
        assert_eq!(client_ip(ip("10.1.0.4"), Some("nonsense"), &trusted), ip("10.1.0.4"));
        assert_eq!(client_ip(ip("10.1.0.4"), Some("10.1.0.7"), &trusted), ip("10.1.0.7"));
    }
}
