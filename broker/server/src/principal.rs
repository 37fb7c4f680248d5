//! Who a connection is, as Kafka's default principal builder names it: `User:ANONYMOUS` on a plaintext
//! listener (or TLS without a client certificate), `User:<name>` once SASL authenticated, and `User:<subject
//! DN>` for a TLS client certificate, the DN written as RFC 2253 has it (Java's `X500Principal.getName()`:
//! most specific part first, `CN=alice,OU=eng,O=Acme`).

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Error;

pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// `ssl.principal.mapping.rules`: how a certificate's subject DN becomes a user name. Rules are tried in
/// order; the first whose pattern matches the whole DN gives the name (its replacement, optionally lower- or
/// upper-cased); `DEFAULT` gives the DN itself. A DN no rule matches is refused, as in Kafka.
#[derive(Debug, Clone)]
pub struct MappingRules(Vec<Rule>);

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Pattern {
        regex: regex::Regex,
        replacement: String,
        case: Option<char>,
    },
}

impl Default for MappingRules {
    fn default() -> Self {
        MappingRules(vec![Rule::Default])
    }
}

impl PartialEq for MappingRules {
    fn eq(&self, other: &Self) -> bool {
        self.describe() == other.describe()
    }
}

impl Eq for MappingRules {}

impl MappingRules {
    /// Parses Kafka's syntax: `RULE:pattern/replacement/[LU]` entries and `DEFAULT`, separated by commas; `\/`
    /// is a '/' inside a pattern or replacement.
    pub fn parse(key: &str, value: &str) -> Result<MappingRules, Error> {
        let syntax = regex::Regex::new(
            r"^\s*(?:RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?)|(DEFAULT))\s*(?:,|$)",
        )
        .map_err(|e| Error::invalid(key, value, e.to_string()))?;
        let mut rules = Vec::new();
        let mut rest = value.trim();
        while !rest.is_empty() {
            let caps = syntax.captures(rest).ok_or_else(|| {
                Error::invalid(
                    key,
                    value,
                    "RULE:pattern/replacement/[LU] or DEFAULT entries, comma-separated",
                )
            })?;
            if caps.get(4).is_some() {
                rules.push(Rule::Default);
            } else {
                let unescape = |s: &str| s.replace("\\/", "/");
                let pattern = unescape(caps.get(1).map_or("", |m| m.as_str()));
                let regex = regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| Error::invalid(key, value, format!("pattern {pattern:?}: {e}")))?;
                rules.push(Rule::Pattern {
                    regex,
                    replacement: unescape(caps.get(2).map_or("", |m| m.as_str())),
                    case: caps.get(3).and_then(|m| m.as_str().chars().next()),
                });
            }
            rest = rest[caps.get(0).map_or(rest.len(), |m| m.end())..].trim_start();
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(MappingRules(rules))
    }

    /// The user name for `dn`, or `None` when no rule applies.
    pub fn apply(&self, dn: &str) -> Option<String> {
        self.0.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_owned()),
            Rule::Pattern {
                regex,
                replacement,
                case,
            } => {
                let caps = regex.captures(dn)?;
                let mut name = String::new();
                caps.expand(&java_groups(replacement), &mut name);
                Some(match case {
                    Some('L') => name.to_lowercase(),
                    Some('U') => name.to_uppercase(),
                    _ => name,
                })
            }
        })
    }

    fn describe(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|r| match r {
                Rule::Default => "DEFAULT".to_owned(),
                Rule::Pattern {
                    regex,
                    replacement,
                    case,
                } => {
                    format!("{}/{replacement}/{case:?}", regex.as_str())
                }
            })
            .collect()
    }
}

/// Java's `$1` group references as the regex crate's `${1}` (so `$1x` stays group 1 then "x").
fn java_groups(replacement: &str) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(*d);
                chars.next();
            }
            out.push_str(&format!("${{{n}}}"));
        } else if c == '$' {
            out.push_str("$$");
        } else {
            out.push(c);
        }
    }
    out
}

/// The principal of a TLS client certificate (DER) under `rules`, or `None` if it does not parse or no rule
/// applies.
pub fn of_certificate_mapped(der: &[u8], rules: &MappingRules) -> Option<String> {
    let full = of_certificate(der)?;
    let dn = full.strip_prefix("User:").unwrap_or(&full);
    rules.apply(dn).map(|name| format!("User:{name}"))
}

/// The principal of a TLS client certificate (DER), or `None` if it does not parse.
pub fn of_certificate(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut parts = Vec::new();
    for rdn in cert
        .subject()
        .iter_rdn()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let mut attrs = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let value = match (short_name(&oid), attr.as_str()) {
                (Some(name), Ok(text)) => format!("{name}={}", escape(text)),
                // Java writes attribute types it has no name for, or values that are not strings, as the
                // dotted OID and the value's DER in hex.
                _ => {
                    let data = attr.as_slice();
                    let mut der = vec![attr.attr_value().tag().0 as u8];
                    if data.len() < 128 {
                        der.push(data.len() as u8);
                    } else {
                        let len = (data.len() as u32).to_be_bytes();
                        let skip = len.iter().take_while(|&&b| b == 0).count();
                        der.push(0x80 | (4 - skip) as u8);
                        der.extend_from_slice(&len[skip..]);
                    }
                    der.extend_from_slice(data);
                    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{oid}=#{hex}")
                }
            };
            attrs.push(value);
        }
        parts.push(attrs.join("+"));
    }
    Some(format!("User:{}", parts.join(",")))
}

/// The keywords RFC 2253 (and Java) use for attribute types.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 2253 section 2.4: the special characters, a leading '#' or space and a trailing space get a backslash.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificates_subject_is_written_most_specific_first() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::OrganizationalUnitName, "eng");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            of_certificate(cert.der()).as_deref(),
            Some("User:CN=alice,OU=eng,O=Acme\\, Inc.,C=US")
        );
        assert_eq!(of_certificate(b"not a certificate"), None);
        assert_eq!(escape(" #a;b "), "\\ #a\\;b\\ ");
    }

    #[test]
    fn mapping_rules_follow_kafkas_syntax() {
        let rules = MappingRules::parse(
            "ssl.principal.mapping.rules",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=([a-z]+)\\/x,O=(.*)$/$2-$1/U,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules.apply("CN=kafka1,OU=ServiceUsers,O=Acme").as_deref(),
            Some("kafka1")
        );
        assert_eq!(rules.apply("CN=ann/x,O=acme").as_deref(), Some("ACME-ANN"));
        assert_eq!(
            rules.apply("CN=other,O=x y").as_deref(),
            Some("CN=other,O=x y")
        );
        let strict = MappingRules::parse("k", "RULE:^CN=(.*)$/$1/L").unwrap();
        assert_eq!(strict.apply("CN=Alice").as_deref(), Some("alice"));
        assert_eq!(strict.apply("O=nobody"), None, "no rule applies: refused");
        assert_eq!(
            MappingRules::default().apply("CN=a").as_deref(),
            Some("CN=a")
        );
        for bad in ["RULE:(/x/", "NOPE", "RULE:a/b/Q"] {
            let e = MappingRules::parse("ssl.principal.mapping.rules", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("ssl.principal.mapping.rules"), "{bad}: {e}");
        }
    }
}
