//! Which host names this server answers to (Django's `ALLOWED_HOSTS`). A page on any web site
//! can point a name it controls at 127.0.0.1 (DNS rebinding) and then read a local Parley as
//! its own origin; such a request names the attacker's host, and is refused here.

use std::net::IpAddr;

pub struct AllowedHosts {
    /// Exact names, and suffixes (from `.example.org`: that name and every subdomain).
    names: Vec<String>,
    suffixes: Vec<String>,
}

impl AllowedHosts {
    pub fn new(configured: &[String]) -> Self {
        let mut names = Vec::new();
        let mut suffixes = Vec::new();
        for host in configured {
            let host = host.trim().to_ascii_lowercase();
            match host.strip_prefix('.') {
                Some(parent) => {
                    names.push(parent.to_owned());
                    suffixes.push(host.clone());
                }
                None if !host.is_empty() => names.push(host),
                None => {}
            }
        }
        Self { names, suffixes }
    }

    /// Whether a request with this `Host` header may be served. IP addresses always may (a
    /// rebinding attack needs a name of its own) and so may `localhost` and its subdomains (which
    /// browsers resolve to the machine itself).
    pub fn allows(&self, host: &str) -> bool {
        let name = without_port(host);
        // Every request asks: the common answer (an address) allocates nothing.
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = name.to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        self.names.iter().any(|n| n == name) || self.suffixes.iter().any(|s| name.ends_with(s))
    }
}

/// `example.org:8000` → `example.org`; `[::1]:8000` → `::1`.
fn without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_localhost_always_and_names_only_when_listed() {
        let hosts = AllowedHosts::new(&["chat.example.org".into(), ".example.net".into()]);
        for ok in [
            "127.0.0.1:8000",
            "10.1.2.3",
            "[::1]:8000",
            "localhost:8000",
            "LOCALHOST",
            "app.localhost",
            "chat.example.org",
            "chat.example.org:443",
            "example.net",
            "a.b.example.net",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "rebind.evil.example:8000",
            "localhost.evil.example",
            "example.org",
            "notexample.net",
            "",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
    }
}
