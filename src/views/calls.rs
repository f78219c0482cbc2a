//! The parts of a page that calls use. calls.js brings them to life; without JavaScript (or
//! WebRTC) the page says calls are not available instead of showing a button that does nothing.

use maud::{Markup, html};

/// "Call" in a private conversation's header.
pub fn call_button(base: &str, name: &str) -> Markup {
    html! {
        div.call-start {
            button.call #call-button type="button" hidden data-calls=(format!("{base}/calls"))
                data-peer=(name) aria-label=(format!("Call {name}")) { "📞 Call" }
            span.call-note #call-unavailable hidden { "This browser cannot make calls." }
            noscript { span.call-note { "Calls need JavaScript." } }
        }
    }
}

/// The call panel, on every page of someone logged in: an incoming call rings here whatever
/// page they are on, and a call goes on here. Hidden until there is a call.
pub fn call_panel() -> Markup {
    html! {
        section #call .call-panel hidden aria-label="Call" {
            p #call-status role="status" aria-live="assertive" {}
            p #call-timer .call-timer hidden {}
            div.call-actions {
                button.primary #call-accept type="button" hidden { "Accept" }
                button.danger #call-decline type="button" hidden { "Decline" }
                button #call-mute type="button" hidden aria-pressed="false" { "Mute" }
                button.danger #call-hangup type="button" hidden { "Hang up" }
                button #call-close type="button" hidden { "Close" }
            }
            audio #call-audio autoplay {}
        }
    }
}
