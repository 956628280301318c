//! The principal of a TLS client from its certificate, as Kafka builds it: the subject's
//! distinguished name in RFC 2253 form (`CN=alice,OU=eng,O=Example,C=US`, what Java's
//! `X500Principal.getName()` prints), passed through `ssl.principal.mapping.rules`
//! (`RULE:pattern/replacement/[LU]` entries and `DEFAULT`, tried in order; the first whose
//! pattern matches the whole name gives the name, lower- or upper-cased with `L` or `U`).
//!
//! The certificate has already been verified by rustls against the trust store; this only
//! reads its subject, with a minimal DER reader that refuses anything it does not expect.

use regex::Regex;

/// Reads one DER element: (tag, contents, rest).
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count].iter().fold(0usize, |len, byte| (len << 8) | usize::from(*byte));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The short names RFC 2253 (and Java) print for attribute types; others print as dotted
/// OIDs.
fn attribute_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "STREET",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        _ => return None,
    })
}

fn dotted(oid: &[u8]) -> String {
    let Some((&first, rest)) = oid.split_first() else { return String::new() };
    let mut parts = vec![(first / 40).to_string(), (first % 40).to_string()];
    let mut value: u64 = 0;
    for byte in rest {
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            parts.push(value.to_string());
            value = 0;
        }
    }
    parts.join(".")
}

/// An attribute value as RFC 2253 prints it: strings escaped, anything else as `#` and hex.
fn value_text(tag: u8, value: &[u8], whole: &[u8]) -> String {
    let text = match tag {
        0x0c | 0x13 | 0x16 | 0x14 => std::str::from_utf8(value).ok().map(str::to_string),
        0x1e => {
            let units: Vec<u16> = value.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    };
    let Some(text) = text else {
        return format!("#{}", whole.iter().map(|b| format!("{b:02x}")).collect::<String>());
    };
    let mut out = String::with_capacity(text.len());
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
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

/// The subject of a DER certificate in RFC 2253 form; `None` if it does not parse.
pub fn subject_name(certificate: &[u8]) -> Option<String> {
    let (SEQUENCE, certificate, _) = element(certificate)? else { return None };
    let (SEQUENCE, tbs, _) = element(certificate)? else { return None };
    let mut rest = tbs;
    // [0] EXPLICIT version, when present.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    let (_serial, _, after_serial) = element(rest)?;
    let (_signature, _, after_signature) = element(after_serial)?;
    let (_issuer, _, after_issuer) = element(after_signature)?;
    let (_validity, _, after_validity) = element(after_issuer)?;
    let (SEQUENCE, mut name, _) = element(after_validity)? else { return None };
    let mut rdns = Vec::new();
    while !name.is_empty() {
        let (SET, mut set, after) = element(name)? else { return None };
        name = after;
        let mut attributes = Vec::new();
        while !set.is_empty() {
            let (SEQUENCE, pair, after) = element(set)? else { return None };
            set = after;
            let (OID, oid, value_and_rest) = element(pair)? else { return None };
            let (tag, value, _) = element(value_and_rest)?;
            let whole = &value_and_rest[..value_and_rest.len() - element(value_and_rest)?.2.len()];
            let key = attribute_name(oid).map_or_else(|| dotted(oid), str::to_string);
            attributes.push(format!("{key}={}", value_text(tag, value, whole)));
        }
        rdns.push(attributes.join("+"));
    }
    // RFC 2253 prints the most specific RDN first: the reverse of the DER order.
    rdns.reverse();
    Some(rdns.join(","))
}

/// One `ssl.principal.mapping.rules` entry.
#[derive(Debug, Clone)]
enum Rule {
    Default,
    Map { pattern: Regex, replacement: String, case: Option<char> },
}

/// Kafka's `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl PrincipalMapper {
    /// Parses the rules (`DEFAULT` when empty); `Err` says what is wrong.
    pub fn parse(rules: &str) -> Result<Self, String> {
        let group_reference = Regex::new(r"\$(\d+)").expect("a fixed pattern");
        let mut parsed = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                parsed.push(Rule::Default);
                rest = after.trim_start().trim_start_matches(',').trim_start();
                continue;
            }
            let body = rest.strip_prefix("RULE:").ok_or_else(|| format!("expected RULE: or DEFAULT at {rest:?}"))?;
            // pattern/replacement/[LU] — the pattern and replacement may not contain '/'.
            let (pattern, after) = body.split_once('/').ok_or("a rule is RULE:pattern/replacement/[LU]")?;
            let (replacement, after) = after.split_once('/').ok_or("a rule is RULE:pattern/replacement/[LU]")?;
            let (case, after) = match after.chars().next() {
                Some(c @ ('L' | 'U')) => (Some(c), &after[1..]),
                _ => (None, after),
            };
            let pattern =
                Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("bad pattern {pattern:?}: {e}"))?;
            // Java reads `$1_svc` as group 1 then `_svc`; the regex crate would read a group
            // named `1_svc`. Braces keep Java's meaning.
            let replacement = group_reference.replace_all(replacement, "$${$1}");
            parsed.push(Rule::Map { pattern, replacement: replacement.into_owned(), case });
            rest = after.trim_start().trim_start_matches(',').trim_start();
        }
        if parsed.is_empty() {
            parsed.push(Rule::Default);
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The principal name for `distinguished_name`: the first rule that matches; the name
    /// itself for DEFAULT; `None` when no rule matches (Kafka then refuses the client).
    pub fn map(&self, distinguished_name: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Some(distinguished_name.to_string()),
                Rule::Map { pattern, replacement, case } => {
                    let Some(captures) = pattern.captures(distinguished_name) else { continue };
                    let mut name = String::new();
                    captures.expand(replacement, &mut name);
                    if name.is_empty() {
                        // An empty principal would merge every such client into one.
                        return None;
                    }
                    return Some(match case {
                        Some('L') => name.to_lowercase(),
                        Some('U') => name.to_uppercase(),
                        _ => name,
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_map_names_as_kafka_documents() {
        let mapper = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(mapper.map("CN=kafka-broker,OU=ServiceUsers,O=Example").as_deref(), Some("kafka-broker"));
        assert_eq!(mapper.map("CN=Alice,OU=Eng,O=Example,L=Town,ST=State,C=US").as_deref(), Some("alice@eng"));
        assert_eq!(mapper.map("CN=other").as_deref(), Some("CN=other"), "DEFAULT keeps the name");
        let strict = PrincipalMapper::parse("RULE:^CN=([a-z]+)$/$1/U").unwrap();
        assert_eq!(strict.map("CN=bob").as_deref(), Some("BOB"));
        assert_eq!(strict.map("CN=Bob,O=x"), None, "no rule matches: refused");
        assert!(PrincipalMapper::parse("RULE:(/x").is_err());
        assert!(PrincipalMapper::parse("NOPE").is_err());
        assert_eq!(PrincipalMapper::parse("").unwrap().map("CN=a").as_deref(), Some("CN=a"));
        let suffixed = PrincipalMapper::parse("RULE:^CN=(.*)$/$1_svc/").unwrap();
        assert_eq!(suffixed.map("CN=alice").as_deref(), Some("alice_svc"), "as Java reads $1_svc");
        let empty = PrincipalMapper::parse("RULE:^CN=(.*)$/$1/").unwrap();
        assert_eq!(empty.map("CN="), None, "an empty principal is refused");
    }

    #[test]
    fn malformed_certificates_have_no_subject() {
        for bad in [&[][..], &[0x30], &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], &[0x30, 0x02, 0x30, 0x05]] {
            assert_eq!(subject_name(bad), None);
        }
    }
}
