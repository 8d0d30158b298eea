//! Domain name syntax, checked before anything is sent to a CA: a typo caught here costs nothing, while a CA rejects the
//! whole order and counts the failure against the account's limits.

use std::fmt;

/// A DNS name that a certificate may carry and HTTP-01 can validate: lower case ASCII (IDNs in their `xn--` form), at least
/// two labels, no wildcard.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

impl DomainName {
    /// Checks `text` and returns the name in lower case, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<DomainName, String> {
        if text.is_empty() {
            return Err("the name is empty".into());
        }
        if text.starts_with("*.") {
            return Err(
                "wildcard names need the DNS-01 challenge; hapcert answers HTTP-01 only, so list each name".into(),
            );
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
        let labels: Vec<&str> = name.split('.').collect();
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
    fn rejects_bad_names_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("*.example.com", "wildcard"),
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
