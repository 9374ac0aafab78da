//! Open connections: a cap on all of them and one per peer address, so a
//! crowd of slow or idle sockets cannot take every file descriptor and
//! task. A connection over a cap is closed as soon as it is accepted.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

#[derive(Default)]
pub struct Connections {
    open: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
}

/// An admitted connection's place; given back when dropped.
pub struct Admitted {
    connections: Arc<Connections>,
    ip: Option<IpAddr>,
}

/// The caps in force.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub total: usize,
    /// 0: no cap per address.
    pub per_ip: usize,
}

impl Connections {
    /// Admits a connection from `ip`, or refuses it over a cap. `exempt`
    /// peers (trusted proxies, carrying many clients) skip the per-address cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, caps: Caps, exempt: bool) -> Option<Admitted> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= caps.total {
            self.open.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("gateway_connections_refused_total", "cap" => "total").increment(1);
            return None;
        }
        let mut admitted = Admitted { connections: self.clone(), ip: None };
        if caps.per_ip > 0 && !exempt {
            let ip = address_block(ip);
            let mut count = self.per_ip.entry(ip).or_insert(0);
            if *count >= caps.per_ip {
                drop(count);
                metrics::counter!("gateway_connections_refused_total", "cap" => "per_ip").increment(1);
                return None;
            }
            *count += 1;
            admitted.ip = Some(ip);
        }
        metrics::gauge!("gateway_connections_open").set(self.open.load(Ordering::Relaxed) as f64);
        Some(admitted)
    }
}

/// What counts as one address: an IPv4 address, or an IPv6 /64 (one host
/// is handed a whole /64 and can pick a new address per connection).
fn address_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let open = self.connections.open.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!("gateway_connections_open").set(open as f64);
        if let Some(ip) = self.ip {
            // Forget an address with nothing open, so the map stays small.
            self.connections.per_ip.remove_if_mut(&ip, |_, count| {
                *count -= 1;
                *count == 0
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_address_and_frees_on_drop() {
        let connections = Arc::new(Connections::default());
        let caps = Caps { total: 3, per_ip: 2 };
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = connections.admit(a, caps, false).unwrap();
        let _second = connections.admit(a, caps, false).unwrap();
        assert!(connections.admit(a, caps, false).is_none(), "a third from one address");
        assert!(connections.admit(a, caps, true).is_some(), "a trusted proxy is not capped per address");
        let _third = connections.admit(b, caps, false).unwrap();
        assert!(connections.admit(b, caps, false).is_none(), "over the total");
        drop(first);
        assert!(connections.admit(a, caps, false).is_some(), "a closed connection frees its place");
        assert_eq!(connections.open.load(Ordering::Relaxed), 2);

        let (x, y): (IpAddr, IpAddr) = ("2001:db8::1".parse().unwrap(), "2001:db8::2:3".parse().unwrap());
        let v6 = Caps { total: 10, per_ip: 1 };
        let _held = connections.admit(x, v6, false).unwrap();
        assert!(connections.admit(y, v6, false).is_none(), "one /64 is one address");
    }
}
