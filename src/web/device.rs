//! Device cookies (as OWASP describes them for lockouts): a browser that has logged in as
//! someone carries a signed note saying so, `parley_device={expires}:{mac}:{name}`. When a name
//! is locked out because someone, somewhere, keeps guessing its password, a browser with that
//! note is still let in with the right password: the owner is not locked out by the attacker.

use hmac::{Hmac, Mac};
use poem::{Request, Response};
use sha2::Sha256;

use super::session::append_cookie;
use parley_admin::cookie_str;

pub const DEVICE_COOKIE: &str = "parley_device";
const DAYS: i64 = 365;

fn mac(key: &[u8], expires: i64, name_key: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(format!("device:{expires}:{name_key}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether this browser has logged in as `name` before (and its note has not expired).
pub fn knows(req: &Request, key: &[u8], name: &str) -> bool {
    let Some(value) = cookie_str(req, DEVICE_COOKIE) else {
        return false;
    };
    let mut parts = value.splitn(3, ':');
    let (Some(expires), Some(sent), Some(signed_name)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return false;
    };
    let name_key = name.trim().to_ascii_lowercase();
    let expected = mac(key, expires, &name_key);
    expires > crate::now_ms()
        && signed_name == name_key
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            sent.as_bytes(),
            expected.as_bytes(),
        ))
}

/// Gives the browser a note that it logged in as `name`.
pub fn remember(resp: &mut Response, key: &[u8], name: &str, secure: bool) {
    let expires = crate::now_ms() + DAYS * 24 * 3600 * 1000;
    let name_key = name.to_ascii_lowercase();
    let value = format!("{expires}:{}:{name_key}", mac(key, expires, &name_key));
    let flags = if secure { "; Secure" } else { "" };
    let max_age = DAYS * 24 * 3600;
    append_cookie(
        resp,
        &format!(
            "{DEVICE_COOKIE}={value}; Path=/login; Max-Age={max_age}; HttpOnly; SameSite=Lax{flags}"
        ),
    );
}
