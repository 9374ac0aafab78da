//! The order's state machine as data: one table of (status, action, actor)
//! → next status. Every writer (the settler applying payment and
//! cancellation events, the gateway's fulfilment and cancellation routes,
//! the sweeper's auto-completion) asks [`next`] before it moves an order,
//! and the API's `invalid_transition` refusals come from the same table.

use serde::{Deserialize, Serialize};

use crate::status::OrderStatus::{self, *};

/// What is done to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The channel confirmed a payment.
    Pay,
    /// The buyer cancels.
    Cancel,
    /// The payment (or confirm) deadline passed.
    Expire,
    /// The merchant hands a paid order to the warehouse.
    Push,
    /// The warehouse shipped the parcel (`carrier`, `tracking_no`).
    Ship,
    /// The buyer confirms receipt.
    Receive,
    /// Shipped long enough ago (`lifecycle.auto_complete_after_secs`) without a confirmation.
    AutoComplete,
    /// Every unit came back in after-sale returns, refunded.
    Close,
}

/// Who does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Buyer,
    Merchant,
    /// The payment channel.
    Channel,
    /// The gateway's or settler's own timers.
    System,
}

/// What a move entails besides the new status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Only the status changes (units of a pending order go back in the
    /// same Redis script that decided the move).
    None,
    /// The payment is refunded and the units go back to the sale.
    Refund,
    /// The warehouse must intercept the parcel first; if it cannot (picking
    /// started), the move is refused. Then as [`Effect::Refund`].
    InterceptThenRefund,
}

/// One allowed move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub from: OrderStatus,
    pub action: Action,
    pub actor: Actor,
    pub to: OrderStatus,
    pub effect: Effect,
}

const fn allow(from: OrderStatus, action: Action, actor: Actor, to: OrderStatus, effect: Effect) -> Transition {
    Transition { from, action, actor, to, effect }
}

/// Every allowed move; anything else is refused. Completion is final for
/// the forward flow (only a full after-sale return closes a completed
/// order); cancellation and closing are final.
pub const TRANSITIONS: &[Transition] = &[
    allow(PendingPayment, Action::Pay, Actor::Channel, Paid, Effect::None),
    allow(PendingPayment, Action::Cancel, Actor::Buyer, Cancelled, Effect::None),
    allow(PendingPayment, Action::Expire, Actor::System, Cancelled, Effect::None),
    allow(Paid, Action::Push, Actor::Merchant, InWarehouse, Effect::None),
    allow(Paid, Action::Cancel, Actor::Buyer, Cancelled, Effect::Refund),
    allow(InWarehouse, Action::Ship, Actor::Merchant, Shipped, Effect::None),
    allow(InWarehouse, Action::Cancel, Actor::Buyer, Cancelled, Effect::InterceptThenRefund),
    allow(Shipped, Action::Receive, Actor::Buyer, Completed, Effect::None),
    allow(Shipped, Action::AutoComplete, Actor::System, Completed, Effect::None),
    allow(Shipped, Action::Close, Actor::System, Closed, Effect::None),
    allow(Completed, Action::Close, Actor::System, Closed, Effect::None),
];

/// `action` by `actor` is not allowed while the order is in `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{action:?} by {actor:?} is not allowed from {status}")]
pub struct Refused {
    pub status: OrderStatus,
    pub action: Action,
    pub actor: Actor,
}

/// The move `action` by `actor` makes from `status`, or why not.
pub fn next(status: OrderStatus, action: Action, actor: Actor) -> Result<&'static Transition, Refused> {
    TRANSITIONS.iter().find(|t| t.from == status && t.action == action && t.actor == actor).ok_or(Refused {
        status,
        action,
        actor,
    })
}

impl Action {
    pub const ALL: [Action; 8] =
        [Self::Pay, Self::Cancel, Self::Expire, Self::Push, Self::Ship, Self::Receive, Self::AutoComplete, Self::Close];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pay => "pay",
            Self::Cancel => "cancel",
            Self::Expire => "expire",
            Self::Push => "push",
            Self::Ship => "ship",
            Self::Receive => "receive",
            Self::AutoComplete => "auto_complete",
            Self::Close => "close",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == name)
    }
}

impl Actor {
    pub const ALL: [Actor; 4] = [Self::Buyer, Self::Merchant, Self::Channel, Self::System];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buyer => "buyer",
            Self::Merchant => "merchant",
            Self::Channel => "channel",
            Self::System => "system",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|actor| actor.as_str() == name)
    }
}

/// The table as a Mermaid state diagram (docs/lifecycle.md is
/// checked against it).
pub fn mermaid() -> String {
    let mut diagram = String::from("stateDiagram-v2\n    [*] --> PENDING_PAYMENT\n");
    for t in TRANSITIONS {
        let effect = match t.effect {
            Effect::None => "",
            Effect::Refund => ", refund",
            Effect::InterceptThenRefund => ", intercept + refund",
        };
        diagram.push_str(&format!(
            "    {} --> {}: {} ({}{effect})\n",
            t.from,
            t.to,
            t.action.as_str(),
            t.actor.as_str()
        ));
    }
    diagram.push_str("    CANCELLED --> [*]\n    CLOSED --> [*]\n");
    diagram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_of_the_table_is_allowed_or_refused_as_listed() {
        for status in OrderStatus::ALL {
            for action in Action::ALL {
                for actor in Actor::ALL {
                    let listed =
                        TRANSITIONS.iter().find(|t| t.from == status && t.action == action && t.actor == actor);
                    match (next(status, action, actor), listed) {
                        (Ok(t), Some(listed)) => assert_eq!(t, listed),
                        (Err(refused), None) => assert_eq!(refused, Refused { status, action, actor }),
                        (got, listed) => panic!("{status} {action:?} {actor:?}: {got:?} vs {listed:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn one_move_per_status_action_and_actor_and_none_out_of_a_final_status() {
        for (i, a) in TRANSITIONS.iter().enumerate() {
            for b in &TRANSITIONS[i + 1..] {
                assert!((a.from, a.action, a.actor) != (b.from, b.action, b.actor), "{a:?} and {b:?}");
            }
            assert!(a.from != Cancelled && a.from != Closed, "{a:?} leaves a final status");
            assert!(a.from != Completed || a.action == Action::Close, "only a full return reopens {a:?}");
            assert!(a.from != a.to, "{a:?} goes nowhere");
        }
    }

    #[test]
    fn every_status_is_reachable_from_pending_payment() {
        let mut reached = vec![PendingPayment];
        while let Some(t) = TRANSITIONS.iter().find(|t| reached.contains(&t.from) && !reached.contains(&t.to)) {
            reached.push(t.to);
        }
        for status in OrderStatus::ALL {
            assert!(reached.contains(&status), "{status} cannot be reached");
        }
    }

    #[test]
    fn the_readme_draws_this_table() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/lifecycle.md"));
        let drawn = format!("```mermaid\n{}```", mermaid());
        assert!(
            readme.contains(&drawn),
            "docs/lifecycle.md's lifecycle diagram differs from the table; put this in:\n{drawn}"
        );
    }

    #[test]
    fn names_parse_back() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
            assert_eq!(serde_json::to_string(&action).unwrap(), format!("\"{}\"", action.as_str()));
        }
        for actor in Actor::ALL {
            assert_eq!(Actor::parse(actor.as_str()), Some(actor));
            assert_eq!(serde_json::to_string(&actor).unwrap(), format!("\"{}\"", actor.as_str()));
        }
    }
}
