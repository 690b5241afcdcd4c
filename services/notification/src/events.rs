//! Event handlers: each consumed event becomes PENDING notification rows, written in one
//! transaction with the inbox row (consumer group `notification`).

use std::sync::Arc;

use kit::events::contract::types;
use kit::events::payloads::*;
use kit::events::{handler_fn, Envelope, Handler};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::model::*;
use crate::store::Effects;
use crate::NotificationState;
use kit::money::format as format_money;

/// The consumer group (and inbox group) of the notification service.
pub const CONSUMER_GROUP: &str = kit::contract::ServiceName::Notification.as_str();

/// The logical topics it reads (the contract's `subscriptions`: the operator creates their
/// dead-letter topics from the same table).
pub const TOPICS: &[&str] = kit::contract::ServiceName::Notification.subscriptions();

/// The event handler (register it before `bus.start`).
pub fn handler(state: NotificationState) -> Arc<dyn Handler> {
    handler_fn(move |ev| {
        let state = state.clone();
        async move { state.handle_event(&ev).await.map(|_| ()) }
    })
}

/// The notification service's subscription: group [`CONSUMER_GROUP`] on [`TOPICS`].
pub fn handlers(state: NotificationState) -> Vec<kit::events::Subscription> {
    vec![kit::events::Subscription {
        group: CONSUMER_GROUP.to_string(),
        topics: TOPICS.iter().map(|t| t.to_string()).collect(),
        handler: handler(state),
    }]
}

fn extra_str(ev: &Envelope, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| ev.data.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn short(id: Uuid) -> String {
    id.simple().to_string()[..8].to_uppercase()
}

/// A customer message to plan.
struct Plan {
    ty: NotificationType,
    user: Uuid,
    order: Option<Uuid>,
    ctx: Value,
}

impl NotificationState {
    /// Handles one event: true when it was new (rows may have been inserted), false for a
    /// redelivery or an event type this service ignores.
    pub async fn handle_event(&self, ev: &Envelope) -> anyhow::Result<bool> {
        let mut fx = Effects::default();
        // Forward compatible: an event may carry the customer's address (optional fields).
        let explicit_contact = |user: Uuid| -> Option<Contact> {
            let c = Contact {
                user_id: user,
                email: extra_str(ev, &["customerEmail", "email"]),
                name: extra_str(ev, &["customerName", "name"]),
                phone: extra_str(ev, &["customerPhone", "phone"]),
            };
            (c.email.is_some() || c.name.is_some() || c.phone.is_some()).then_some(c)
        };
        let plan: Option<Plan> = match ev.ty.as_str() {
            types::ORDER_PLACED => {
                let p: OrderPlaced = ev.decode()?;
                fx.orders.push((p.order_id, p.user_id));
                let items: Vec<Value> = p
                    .items
                    .iter()
                    .map(|i| {
                        json!({"product_id": i.product_id, "quantity": i.quantity,
                            "unit_price": i.unit_price.as_ref().map(|m| format_money(m.amount, &m.currency))})
                    })
                    .collect();
                Some(Plan {
                    ty: NotificationType::OrderConfirmation,
                    user: p.user_id,
                    order: Some(p.order_id),
                    ctx: json!({"items": items, "total": format_money(p.total.amount, &p.total.currency)}),
                })
            }
            types::ORDER_CONFIRMED => {
                let p: OrderConfirmed = ev.decode()?;
                fx.orders.push((p.order_id, p.user_id));
                Some(Plan {
                    ty: NotificationType::PaymentConfirmation,
                    user: p.user_id,
                    order: Some(p.order_id),
                    ctx: json!({"total": format_money(p.total.amount, &p.total.currency)}),
                })
            }
            types::ORDER_SHIPPED => {
                let p: OrderShipped = ev.decode()?;
                fx.orders.push((p.order_id, p.user_id));
                let known = self.store.shipment(p.shipment_id).await?;
                let carrier =
                    extra_str(ev, &["carrier"]).or_else(|| known.as_ref().map(|s| s.carrier.clone()));
                let tracking = extra_str(ev, &["trackingNumber"])
                    .or_else(|| known.as_ref().map(|s| s.tracking_number.clone()));
                Some(Plan {
                    ty: NotificationType::ShippingUpdate,
                    user: p.user_id,
                    order: Some(p.order_id),
                    ctx: json!({"carrier": carrier, "tracking_number": tracking, "shipment_id": p.shipment_id}),
                })
            }
            types::ORDER_DELIVERED => {
                let p: OrderDelivered = ev.decode()?;
                fx.orders.push((p.order_id, p.user_id));
                let when = p.delivered_at.date().to_string();
                Some(Plan {
                    ty: NotificationType::DeliveryConfirmation,
                    user: p.user_id,
                    order: Some(p.order_id),
                    ctx: json!({"delivered_at": when}),
                })
            }
            types::ORDER_CANCELLED => {
                let p: OrderCancelled = ev.decode()?;
                fx.orders.push((p.order_id, p.user_id));
                Some(Plan {
                    ty: NotificationType::OrderCancelled,
                    user: p.user_id,
                    order: Some(p.order_id),
                    ctx: json!({"reason": p.reason, "refund": p.refund}),
                })
            }
            types::PAYMENT_FAILED | types::PAYMENT_REFUNDED => {
                let (ty, order, amount, reason) = if ev.ty == types::PAYMENT_FAILED {
                    let p: PaymentFailed = ev.decode()?;
                    (NotificationType::PaymentFailed, p.order_id, p.amount, Some(p.reason))
                } else {
                    let p: PaymentRefunded = ev.decode()?;
                    (NotificationType::RefundIssued, p.order_id, p.amount, None)
                };
                let ctx = json!({"amount": format_money(amount.amount, &amount.currency), "reason": reason});
                match self.store.order_user(order).await? {
                    Some(user) => Some(Plan { ty, user, order: Some(order), ctx }),
                    None => {
                        // Payment events carry no user id; without the order's customer there is
                        // nobody to address. Recorded as FAILED so an admin sees it.
                        fx.notifications.push(self.unaddressable(
                            ev,
                            ty,
                            None,
                            Some(order),
                            format!(
                                "order {order} unknown to the notification service (no order event seen)"
                            ),
                        ));
                        None
                    }
                }
            }
            types::INVENTORY_LOW_STOCK => {
                let p: InventoryLowStock = ev.decode()?;
                let ctx =
                    json!({"product_id": p.product_id, "available": p.available, "threshold": p.threshold});
                let ty = NotificationType::LowStockAlert;
                let r = self.render(ty, None, &ctx)?;
                let recipients = self.config.admin_emails.join(", ");
                if recipients.is_empty() {
                    tracing::warn!(product_id = %p.product_id, "low stock alert not sent: no admin_emails configured");
                } else {
                    fx.notifications.push(self.new_row(
                        ev,
                        ty,
                        ChannelKind::Email,
                        None,
                        None,
                        recipients,
                        r.subject,
                        r.text,
                        Some(r.html),
                    ));
                }
                None
            }
            types::SHIPMENT_SHIPPED => {
                let p: ShipmentShipped = ev.decode()?;
                fx.shipments.push(Shipment {
                    shipment_id: p.shipment_id,
                    order_id: p.order_id,
                    carrier: p.carrier,
                    tracking_number: p.tracking_number,
                });
                None
            }
            _ => None,
        };

        if let Some(plan) = plan {
            let explicit = explicit_contact(plan.user);
            let stored = self.store.contact(plan.user).await?;
            let contact = merge(explicit.clone(), stored);
            if let Some(c) = explicit {
                fx.contacts.push(c);
            }
            self.plan_customer(ev, plan, contact, &mut fx)?;
        }

        let fresh = self.store.apply_event(CONSUMER_GROUP, ev.id, &fx).await?;
        if fresh && !fx.notifications.is_empty() {
            self.wake.notify_one();
        }
        Ok(fresh)
    }

    fn plan_customer(
        &self,
        ev: &Envelope,
        plan: Plan,
        contact: Option<Contact>,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        let contact = contact.unwrap_or(Contact { user_id: plan.user, ..Default::default() });
        let r = self.render(plan.ty, Some((&contact, plan.order)), &plan.ctx)?;
        match &contact.email {
            Some(email) => fx.notifications.push(self.new_row(
                ev,
                plan.ty,
                ChannelKind::Email,
                Some(plan.user),
                plan.order,
                email.clone(),
                r.subject.clone(),
                r.text.clone(),
                Some(r.html.clone()),
            )),
            None => fx.notifications.push(self.unaddressable(
                ev,
                plan.ty,
                Some(plan.user),
                plan.order,
                format!("no email address known for user {}", plan.user),
            )),
        }
        if self.channels.sms.is_some() {
            if let Some(phone) = &contact.phone {
                fx.notifications.push(self.new_row(
                    ev,
                    plan.ty,
                    ChannelKind::Sms,
                    Some(plan.user),
                    plan.order,
                    phone.clone(),
                    r.subject.clone(),
                    r.subject.clone(),
                    None,
                ));
            }
        }
        if self.channels.push.is_some() {
            fx.notifications.push(self.new_row(
                ev,
                plan.ty,
                ChannelKind::Push,
                Some(plan.user),
                plan.order,
                plan.user.to_string(),
                r.subject.clone(),
                r.subject,
                None,
            ));
        }
        Ok(())
    }

    fn render(
        &self,
        ty: NotificationType,
        who: Option<(&Contact, Option<Uuid>)>,
        ctx: &Value,
    ) -> anyhow::Result<crate::templates::Rendered> {
        let mut ctx = ctx.clone();
        let obj = ctx.as_object_mut().expect("context is an object");
        obj.insert("shop_name".into(), json!(self.config.shop_name));
        if let Some((contact, order)) = who {
            obj.insert("name".into(), json!(contact.name.clone().unwrap_or_else(|| "there".into())));
            if let Some(order) = order {
                obj.insert("order_id".into(), json!(order));
                obj.insert("short_order".into(), json!(short(order)));
            }
        }
        self.templates.render(ty, &ctx)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_row(
        &self,
        ev: &Envelope,
        ty: NotificationType,
        channel: ChannelKind,
        user: Option<Uuid>,
        order: Option<Uuid>,
        recipient: String,
        subject: String,
        content: String,
        html: Option<String>,
    ) -> NewNotification {
        NewNotification {
            id: Uuid::now_v7(),
            event_id: ev.id,
            event_type: ev.ty.clone(),
            user_id: user,
            order_id: order,
            recipient,
            notification_type: ty,
            channel,
            subject,
            content,
            html,
            status: Status::Pending,
            last_error: None,
            secret: None,
            secret_expires_at: None,
        }
    }

    fn unaddressable(
        &self,
        ev: &Envelope,
        ty: NotificationType,
        user: Option<Uuid>,
        order: Option<Uuid>,
        error: String,
    ) -> NewNotification {
        tracing::warn!(event_id = %ev.id, r#type = %ty, %error, "notification cannot be addressed");
        let mut n = self.new_row(
            ev,
            ty,
            ChannelKind::Email,
            user,
            order,
            String::new(),
            ty.to_string(),
            String::new(),
            None,
        );
        n.status = Status::Failed;
        n.last_error = Some(error);
        n
    }
}

fn merge(explicit: Option<Contact>, stored: Option<Contact>) -> Option<Contact> {
    match (explicit, stored) {
        (Some(e), Some(s)) => Some(Contact {
            user_id: e.user_id,
            email: e.email.or(s.email),
            name: e.name.or(s.name),
            phone: e.phone.or(s.phone),
        }),
        (e, s) => e.or(s),
    }
}
