//! A sale's window: when buying opens and closes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Either end may be open: no start means on sale from loading, no end
/// means until sold out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleWindow {
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
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
    fn round_trips_through_milliseconds() {
        let at = DateTime::from_timestamp_millis(1_790_000_000_123).unwrap();
        let window = SaleWindow { starts_at: Some(at), ends_at: None };
        let (starts, ends) = window.to_ms();
        assert_eq!((starts, ends), (1_790_000_000_123, 0));
        assert_eq!(SaleWindow::from_ms(starts, ends), window);
    }
}
