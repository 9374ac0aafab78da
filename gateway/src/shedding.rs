//! Load shedding: a cap on requests served at once. Past it a request gets
//! an immediate 503 rather than a place in a queue that would only make
//! every answer late.

use std::sync::atomic::{AtomicUsize, Ordering};

use ordercenter::refusal::Refusal;

#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
}

/// A request's place among those in flight; given back when dropped.
pub struct Slot<'a> {
    in_flight: &'a InFlight,
}

impl InFlight {
    /// Takes a slot, or refuses when `cap` are taken (0: no cap).
    pub fn enter(&self, cap: usize) -> Result<Slot<'_>, Refusal> {
        let now = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = Slot { in_flight: self };
        if cap > 0 && now > cap {
            metrics::counter!("gateway_shed_total").increment(1);
            return Err(Refusal::Overloaded);
        }
        metrics::gauge!("gateway_in_flight").set(now as f64);
        Ok(slot)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let now = self.in_flight.count.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!("gateway_in_flight").set(now as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_cap_and_frees_slots() {
        let in_flight = InFlight::default();
        let a = in_flight.enter(2).unwrap();
        let _b = in_flight.enter(2).unwrap();
        assert!(matches!(in_flight.enter(2), Err(Refusal::Overloaded)));
        drop(a);
        assert!(in_flight.enter(2).is_ok());
        assert!(in_flight.enter(0).is_ok(), "0 is no cap");
    }
}
