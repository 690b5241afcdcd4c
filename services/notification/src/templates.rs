//! Email templates: minijinja, HTML (auto-escaped) plus a plain-text alternative and a subject
//! line per notification type. The defaults are embedded from `templates/`; a file of the same
//! name in `template_dir` replaces one (a ConfigMap in Kubernetes).

use std::path::Path;

use anyhow::Context as _;
use minijinja::Environment;
use serde::Serialize;

use crate::model::NotificationType;

macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// The built-in templates, by file name.
pub const DEFAULT_TEMPLATES: &[(&str, &str)] = embedded!(
    "base.html",
    "base.txt",
    "order_confirmation.subject.txt",
    "order_confirmation.txt",
    "order_confirmation.html",
    "payment_confirmation.subject.txt",
    "payment_confirmation.txt",
    "payment_confirmation.html",
    "shipping_update.subject.txt",
    "shipping_update.txt",
    "shipping_update.html",
    "delivery_confirmation.subject.txt",
    "delivery_confirmation.txt",
    "delivery_confirmation.html",
    "order_cancelled.subject.txt",
    "order_cancelled.txt",
    "order_cancelled.html",
    "refund_issued.subject.txt",
    "refund_issued.txt",
    "refund_issued.html",
    "payment_failed.subject.txt",
    "payment_failed.txt",
    "payment_failed.html",
    "low_stock_alert.subject.txt",
    "low_stock_alert.txt",
    "low_stock_alert.html",
    "password_reset.subject.txt",
    "password_reset.txt",
    "password_reset.html",
    "email_verification.subject.txt",
    "email_verification.txt",
    "email_verification.html",
    "account_exists.subject.txt",
    "account_exists.txt",
    "account_exists.html",
    "password_changed.subject.txt",
    "password_changed.txt",
    "password_changed.html",
);

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    /// The built-in templates, each replaced by `dir/<name>` when that file exists.
    /// Fails on a template that does not compile (so a broken override stops the start).
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Templates> {
        let mut env = Environment::new();
        // `.html` → HTML escaping, `.txt` → none (minijinja's default callback, made explicit).
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        for (name, default) in DEFAULT_TEMPLATES {
            let source = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => {
                    tracing::info!(template = name, path = %path.display(), "template overridden");
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading template override {}", path.display()))?
                }
                None => default.to_string(),
            };
            env.add_template_owned(name.to_string(), source)
                .with_context(|| format!("template `{name}` does not compile"))?;
        }
        Ok(Templates { env })
    }

    /// Renders subject, text and HTML of `ty` with `ctx`.
    pub fn render<C: Serialize>(&self, ty: NotificationType, ctx: &C) -> anyhow::Result<Rendered> {
        let base = ty.template_name();
        let ctx = minijinja::Value::from_serialize(ctx);
        let render = |ctx: &minijinja::Value, suffix: &str| -> anyhow::Result<String> {
            let name = format!("{base}{suffix}");
            self.env
                .get_template(&name)
                .and_then(|t| t.render(ctx))
                .with_context(|| format!("rendering template `{name}`"))
        };
        let subject = render(&ctx, ".subject.txt")?.split_whitespace().collect::<Vec<_>>().join(" ");
        let ctx = minijinja::context! { subject => subject.clone(), ..ctx };
        Ok(Rendered {
            text: render(&ctx, ".txt")?.trim().to_string() + "\n",
            html: render(&ctx, ".html")?,
            subject,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_type_renders_and_html_is_escaped() {
        let t = Templates::load(None).unwrap();
        let ctx = json!({"shop_name": "Shop", "name": "<script>alert(1)</script>", "order_id": "o-1",
            "carrier": "UPS", "tracking_number": "1Z", "total": "$1.00"});
        for ty in NotificationType::ALL {
            let r = t.render(*ty, &ctx).unwrap();
            assert!(!r.subject.is_empty(), "{ty}");
            assert!(!r.html.contains("<script>"), "{ty}: {}", r.html);
        }
        let r = t.render(NotificationType::OrderConfirmation, &ctx).unwrap();
        assert!(r.html.contains("Hello &lt;script&gt;alert(1)&lt;"), "{}", r.html);
        assert!(r.html.contains("<title>Order"), "subject in the HTML title: {}", r.html);
        assert!(r.text.contains("<script>alert(1)</script>"), "text is not HTML: {}", r.text);
    }

    #[test]
    fn a_file_in_template_dir_replaces_the_default() {
        let dir = std::env::temp_dir().join(format!("shop-tpl-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("shipping_update.subject.txt"), "Custom: {{ carrier }}").unwrap();
        let t = Templates::load(Some(&dir)).unwrap();
        let r = t.render(NotificationType::ShippingUpdate, &json!({"carrier": "DHL"})).unwrap();
        assert_eq!(r.subject, "Custom: DHL");
        std::fs::write(dir.join("payment_failed.html"), "{% if %}").unwrap();
        assert!(Templates::load(Some(&dir)).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
