//! The statuses an order moves through, as stored and shown.

use serde::{Deserialize, Serialize};

/// Forward flow: pending payment → paid (awaiting shipment) → in the
/// warehouse (pushed, still awaiting shipment) → shipped (awaiting receipt)
/// → completed; an order may be cancelled until it ships, and is closed
/// once every unit came back in after-sale returns. The moves between
/// them are [`crate::lifecycle::TRANSITIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    InWarehouse,
    Shipped,
    Completed,
    Cancelled,
    /// Every unit came back in after-sale returns and was refunded.
    Closed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        Self::PendingPayment,
        Self::Paid,
        Self::InWarehouse,
        Self::Shipped,
        Self::Completed,
        Self::Cancelled,
        Self::Closed,
    ];

    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "PENDING_PAYMENT",
            Self::Paid => "PAID",
            Self::InWarehouse => "IN_WAREHOUSE",
            Self::Shipped => "SHIPPED",
            Self::Completed => "COMPLETED",
            Self::Cancelled => "CANCELLED",
            Self::Closed => "CLOSED",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Whether the order's units count as sold by its sale: paid and not
    /// cancelled (goods returned after shipping do not go back on the sale).
    pub fn is_sold(self) -> bool {
        matches!(self, Self::Paid | Self::InWarehouse | Self::Shipped | Self::Completed | Self::Closed)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_parse_back() {
        for status in OrderStatus::ALL {
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{}\"", status.as_str()));
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::parse("pending"), None);
    }
}
