//! A sale's window (when buying opens and closes) and its deduction
//! strategy (when its units leave the stock).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Either end may be open: no start means on sale from loading, no end
/// means until sold out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleWindow {
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// When a sale's units leave its stock (seed 001 weighs the two).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deduction {
    /// A placed order holds its units until it is paid or ends: every
    /// payer gets what they ordered, and hoarders are kept down by the
    /// payment window, the per-user limit and the strikes rule.
    #[default]
    OnOrder,
    /// A placed order holds no unit; a verified payment takes units while
    /// any are left and is refunded when none are. Orders awaiting payment
    /// are capped at a share of the stock (`open_orders_cap_pct`) so that
    /// few buyers pay for nothing.
    OnPayment,
}

impl Deduction {
    /// The open-order cap of a sale deducting at payment that names none.
    pub const DEFAULT_OPEN_ORDERS_CAP_PCT: u32 = 150;
    /// The cap's bounds: at least every unit, at most ten orders per unit.
    pub const OPEN_ORDERS_CAP_PCT: std::ops::RangeInclusive<u32> = 100..=1_000;

    /// The strategy as Redis keeps it (`open_cap_pct`): 0 deducts at
    /// order, above 0 at payment with that cap.
    pub fn open_cap_pct(self, cap: Option<u32>) -> u32 {
        match self {
            Self::OnOrder => 0,
            Self::OnPayment => cap.unwrap_or(Self::DEFAULT_OPEN_ORDERS_CAP_PCT),
        }
    }

    /// The strategy and its cap from what Redis keeps.
    pub fn from_open_cap_pct(pct: u32) -> (Self, Option<u32>) {
        if pct == 0 {
            (Self::OnOrder, None)
        } else {
            (Self::OnPayment, Some(pct))
        }
    }
}

/// Where a moment falls in a sale's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    NotStarted { starts_at: DateTime<Utc> },
    Open,
    Ended,
}

impl SaleWindow {
    pub fn phase(&self, now: DateTime<Utc>) -> Phase {
        match (self.starts_at, self.ends_at) {
            (Some(starts_at), _) if now < starts_at => Phase::NotStarted { starts_at },
            (_, Some(ends_at)) if now >= ends_at => Phase::Ended,
            _ => Phase::Open,
        }
    }

    /// Whether the window is well formed: it ends after it starts.
    pub fn is_valid(&self) -> bool {
        match (self.starts_at, self.ends_at) {
            (Some(starts_at), Some(ends_at)) => starts_at < ends_at,
            _ => true,
        }
    }

    /// The ends as Unix ms, 0 for an open end (how Redis stores them).
    pub fn to_ms(&self) -> (i64, i64) {
        let ms = |at: Option<DateTime<Utc>>| at.map_or(0, |at| at.timestamp_millis());
        (ms(self.starts_at), ms(self.ends_at))
    }

    pub fn from_ms(starts_ms: i64, ends_ms: i64) -> Self {
        let at = |ms: i64| (ms > 0).then(|| DateTime::from_timestamp_millis(ms)).flatten();
        Self { starts_at: at(starts_ms), ends_at: at(ends_ms) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn phases_follow_the_window() {
        let now = Utc::now();
        let window = SaleWindow { starts_at: Some(now + Duration::hours(1)), ends_at: Some(now + Duration::hours(2)) };
        assert_eq!(window.phase(now), Phase::NotStarted { starts_at: now + Duration::hours(1) });
        assert_eq!(window.phase(now + Duration::minutes(90)), Phase::Open);
        assert_eq!(window.phase(now + Duration::hours(2)), Phase::Ended);
        assert_eq!(SaleWindow::default().phase(now), Phase::Open);
        assert!(window.is_valid());
        assert!(!SaleWindow { starts_at: window.ends_at, ends_at: window.starts_at }.is_valid());
    }

    #[test]
    fn the_deduction_strategy_round_trips_through_its_cap() {
        assert_eq!(Deduction::OnOrder.open_cap_pct(Some(200)), 0);
        assert_eq!(Deduction::OnPayment.open_cap_pct(None), 150);
        assert_eq!(Deduction::from_open_cap_pct(0), (Deduction::OnOrder, None));
        assert_eq!(Deduction::from_open_cap_pct(200), (Deduction::OnPayment, Some(200)));
        assert_eq!(serde_json::to_string(&Deduction::OnPayment).unwrap(), "\"on_payment\"");
    }

    #[test]
    fn round_trips_through_milliseconds() {
        let at = DateTime::from_timestamp_millis(1_790_000_000_123).unwrap();
        let window = SaleWindow { starts_at: Some(at), ends_at: None };
        let (starts, ends) = window.to_ms();
        assert_eq!((starts, ends), (1_790_000_000_123, 0));
        assert_eq!(SaleWindow::from_ms(starts, ends), window);
    }
}
