//! After-sale requests: their own records with their own state machine, as
//! data like the order's (seed 002's after-sale statuses). A request never
//! edits the original order's money: a refund is a row of its own, and
//! the order moves only by its own table (a full return closes it; a
//! refund before shipment cancels it).

use serde::{Deserialize, Serialize};

/// What the buyer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    /// Money back before the order shipped, nothing to send back.
    RefundOnly,
    /// Send the goods back, get the money back.
    ReturnRefund,
    /// Send the goods back, get the same goods again.
    Exchange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    PendingReview,
    /// Not reviewed in time: customer service decides.
    Escalated,
    /// Approved; the return address is given.
    AwaitingReturn,
    /// Received back at the warehouse (or nothing to return).
    AwaitingRefund,
    Refunded,
    AwaitingExchangeReturn,
    /// The replacement's outbound order is with the warehouse.
    ExchangeOutbound,
    AfterSaleSuccess,
    /// Refused, with a reason; the original order carries on.
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Approve,
    Reject,
    /// The review deadline passed (`after_sale.review_within_secs`) and the
    /// config says escalate rather than approve.
    Escalate,
    /// The warehouse received the returned goods.
    ReceiveReturn,
    /// The refund is recorded (it then goes through the channel).
    Refund,
    /// The replacement shipped.
    ShipReplacement,
}

pub use crate::lifecycle::Actor;
use Kind::*;
use Status::*;

/// One allowed move of a request of `kind` (`None`: any kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub kind: Option<Kind>,
    pub from: Status,
    pub action: Action,
    pub actor: Actor,
    pub to: Status,
}

const fn allow(kind: Option<Kind>, from: Status, action: Action, actor: Actor, to: Status) -> Transition {
    Transition { kind, from, action, actor, to }
}

/// Every allowed move; a request enters PENDING_REVIEW. Refunded,
/// after-sale success and rejected are final.
pub const TRANSITIONS: &[Transition] = &[
    allow(None, PendingReview, Action::Reject, Actor::Merchant, Rejected),
    allow(None, PendingReview, Action::Escalate, Actor::System, Escalated),
    allow(None, Escalated, Action::Reject, Actor::Merchant, Rejected),
    allow(Some(RefundOnly), PendingReview, Action::Approve, Actor::Merchant, AwaitingRefund),
    allow(Some(RefundOnly), PendingReview, Action::Approve, Actor::System, AwaitingRefund),
    allow(Some(RefundOnly), Escalated, Action::Approve, Actor::Merchant, AwaitingRefund),
    allow(Some(ReturnRefund), PendingReview, Action::Approve, Actor::Merchant, AwaitingReturn),
    allow(Some(ReturnRefund), PendingReview, Action::Approve, Actor::System, AwaitingReturn),
    allow(Some(ReturnRefund), Escalated, Action::Approve, Actor::Merchant, AwaitingReturn),
    allow(Some(ReturnRefund), AwaitingReturn, Action::ReceiveReturn, Actor::Merchant, AwaitingRefund),
    allow(None, AwaitingRefund, Action::Refund, Actor::System, Refunded),
    allow(Some(Exchange), PendingReview, Action::Approve, Actor::Merchant, AwaitingExchangeReturn),
    allow(Some(Exchange), PendingReview, Action::Approve, Actor::System, AwaitingExchangeReturn),
    allow(Some(Exchange), Escalated, Action::Approve, Actor::Merchant, AwaitingExchangeReturn),
    allow(Some(Exchange), AwaitingExchangeReturn, Action::ReceiveReturn, Actor::Merchant, ExchangeOutbound),
    allow(Some(Exchange), ExchangeOutbound, Action::ShipReplacement, Actor::Merchant, AfterSaleSuccess),
];

/// `action` by `actor` is not allowed for a `kind` request in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{action:?} by {actor:?} is not allowed for a {kind:?} request in {status:?}")]
pub struct Refused {
    pub kind: Kind,
    pub status: Status,
    pub action: Action,
    pub actor: Actor,
}

/// The move, or why not.
pub fn next(kind: Kind, status: Status, action: Action, actor: Actor) -> Result<&'static Transition, Refused> {
    TRANSITIONS
        .iter()
        .find(|t| t.kind.is_none_or(|k| k == kind) && t.from == status && t.action == action && t.actor == actor)
        .ok_or(Refused { kind, status, action, actor })
}

impl Kind {
    pub const ALL: [Kind; 3] = [RefundOnly, ReturnRefund, Exchange];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundOnly => "REFUND_ONLY",
            ReturnRefund => "RETURN_REFUND",
            Exchange => "EXCHANGE",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl Status {
    pub const ALL: [Status; 9] = [
        PendingReview,
        Escalated,
        AwaitingReturn,
        AwaitingRefund,
        Refunded,
        AwaitingExchangeReturn,
        ExchangeOutbound,
        AfterSaleSuccess,
        Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PendingReview => "PENDING_REVIEW",
            Escalated => "ESCALATED",
            AwaitingReturn => "AWAITING_RETURN",
            AwaitingRefund => "AWAITING_REFUND",
            Refunded => "REFUNDED",
            AwaitingExchangeReturn => "AWAITING_EXCHANGE_RETURN",
            ExchangeOutbound => "EXCHANGE_OUTBOUND",
            AfterSaleSuccess => "AFTER_SALE_SUCCESS",
            Rejected => "REJECTED",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Nothing more happens to a request in this status.
    pub fn is_final(self) -> bool {
        matches!(self, Refunded | AfterSaleSuccess | Rejected)
    }
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Approve,
        Action::Reject,
        Action::Escalate,
        Action::ReceiveReturn,
        Action::Refund,
        Action::ShipReplacement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Escalate => "escalate",
            Action::ReceiveReturn => "receive_return",
            Action::Refund => "refund",
            Action::ShipReplacement => "ship_replacement",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == name)
    }
}

/// The table as a Mermaid state diagram (checked against docs/lifecycle.md).
pub fn mermaid() -> String {
    let mut diagram = String::from("stateDiagram-v2\n    [*] --> PENDING_REVIEW\n");
    for t in TRANSITIONS {
        let kind = t.kind.map_or(String::new(), |kind| format!("{}: ", kind.as_str()));
        diagram.push_str(&format!(
            "    {} --> {}: {kind}{} ({})\n",
            t.from.as_str(),
            t.to.as_str(),
            t.action.as_str(),
            t.actor.as_str()
        ));
    }
    for status in Status::ALL.into_iter().filter(|status| status.is_final()) {
        diagram.push_str(&format!("    {} --> [*]\n", status.as_str()));
    }
    diagram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_move_per_cell_and_none_out_of_a_final_status() {
        for kind in Kind::ALL {
            for status in Status::ALL {
                for action in Action::ALL {
                    for actor in Actor::ALL {
                        let matching = TRANSITIONS
                            .iter()
                            .filter(|t| {
                                t.kind.is_none_or(|k| k == kind)
                                    && t.from == status
                                    && t.action == action
                                    && t.actor == actor
                            })
                            .count();
                        assert!(matching <= 1, "{kind:?} {status:?} {action:?} {actor:?}");
                        assert_eq!(next(kind, status, action, actor).is_ok(), matching == 1);
                        if status.is_final() {
                            assert_eq!(matching, 0, "{status:?} is final");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_kind_reaches_its_end_and_can_be_rejected() {
        let ends = [(RefundOnly, Refunded), (ReturnRefund, Refunded), (Exchange, AfterSaleSuccess)];
        for (kind, end) in ends {
            let mut reached = vec![PendingReview];
            while let Some(t) = TRANSITIONS
                .iter()
                .find(|t| t.kind.is_none_or(|k| k == kind) && reached.contains(&t.from) && !reached.contains(&t.to))
            {
                reached.push(t.to);
            }
            assert!(reached.contains(&end) && reached.contains(&Rejected), "{kind:?}: {reached:?}");
        }
    }

    #[test]
    fn the_readme_draws_this_table() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/lifecycle.md"));
        let drawn = format!("```mermaid\n{}```", mermaid());
        assert!(
            readme.contains(&drawn),
            "docs/lifecycle.md's after-sale diagram differs from the table; put this in:\n{drawn}"
        );
    }

    #[test]
    fn names_parse_back() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{}\"", kind.as_str()));
        }
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{}\"", status.as_str()));
        }
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
    }
}
