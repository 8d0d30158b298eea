//! Domain name syntax, checked before anything is sent to a CA: a typo caught here costs nothing, while a CA rejects the
//! whole order and counts the failure against the account's limits.

use std::fmt;

/// A DNS name that a certificate may carry: lower case ASCII (IDNs in their `xn--` form), at least two labels, and
/// perhaps a wildcard `*` as the whole first label (which only DNS-01 can validate; the config checks that).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    /// Checks `text` and returns the name in lower case, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<DomainName, String> {
        if text.is_empty() {
            return Err("the name is empty".into());
        }
        if text.ends_with('.') {
            return Err("drop the trailing dot".into());
        }
        if !text.is_ascii() {
            return Err("internationalized names must be written in their ASCII form (xn--...)".into());
        }
        if text.parse::<std::net::IpAddr>().is_ok() {
            return Err("IP addresses are not supported; name a DNS host".into());
        }
        let name = text.to_ascii_lowercase();
        if name.len() > 253 {
            return Err(format!(
                "the name is {} characters long; at most 253 are allowed",
                name.len()
            ));
        }
        let labels: Vec<&str> = name.strip_prefix("*.").unwrap_or(&name).split('.').collect();
        if labels.len() < 2 && name.starts_with("*.") {
            return Err("a wildcard covers one level under a name of at least two labels, like *.example.com".into());
        }
        if labels.len() < 2 {
            return Err("a certificate name needs at least two labels, like example.com".into());
        }
        for label in &labels {
            check_label(label)?;
        }
        if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
            return Err("the last label must not be all digits".into());
        }
        Ok(DomainName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The name without its wildcard label: what DNS-01 validates (`_acme-challenge.<base>`) for `*.<base>` and `<base>`.
    pub fn base(&self) -> &str {
        self.0.strip_prefix("*.").unwrap_or(&self.0)
    }
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("the name has an empty label (two dots in a row, or a leading dot)".into());
    }
    if label.len() > 63 {
        return Err(format!(
            "the label '{label}' is {} characters long; at most 63 are allowed",
            label.len()
        ));
    }
    if label.contains('*') {
        return Err("'*' may only be the whole first label, like *.example.com".into());
    }
    if let Some(bad) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
        return Err(format!(
            "'{bad}' is not allowed in a DNS name; use letters, digits and '-'"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("the label '{label}' must not start or end with '-'"));
    }
    Ok(())
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names_and_lowercases_them() {
        assert_eq!(
            DomainName::parse("WWW.Example.COM").unwrap().as_str(),
            "www.example.com"
        );
        assert_eq!(
            DomainName::parse("xn--bcher-kva.example").unwrap().as_str(),
            "xn--bcher-kva.example"
        );
        assert_eq!(DomainName::parse("a-b.c1.example").unwrap().as_str(), "a-b.c1.example");
    }

    #[test]
    fn a_wildcard_is_a_whole_first_label_over_its_base() {
        let wildcard = DomainName::parse("*.Example.COM").unwrap();
        assert_eq!(wildcard.as_str(), "*.example.com");
        assert!(wildcard.is_wildcard());
        assert_eq!(wildcard.base(), "example.com");
        let plain = DomainName::parse("example.com").unwrap();
        assert!(!plain.is_wildcard());
        assert_eq!(plain.base(), "example.com");
    }

    #[test]
    fn rejects_bad_names_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("*.com", "wildcard covers one level"),
            ("www.*.example.com", "whole first label"),
            ("w*.example.com", "whole first label"),
            ("example.com.", "trailing dot"),
            ("bücher.example", "xn--"),
            ("127.0.0.1", "IP addresses"),
            ("localhost", "two labels"),
            ("a..example.com", "empty label"),
            ("-a.example.com", "start or end with '-'"),
            ("a_b.example.com", "'_' is not allowed"),
            ("example.123", "all digits"),
        ];
        for (input, expected) in cases {
            let err = DomainName::parse(input).unwrap_err();
            assert!(err.contains(expected), "{input:?}: {err}");
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(DomainName::parse(&long_label).unwrap_err().contains("at most 63"));
        let long_name = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        assert!(DomainName::parse(&long_name).unwrap_err().contains("at most 253"));
    }
}
