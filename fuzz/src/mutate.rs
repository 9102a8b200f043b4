//! The mutator of the bounded run in `cargo test` (`tests/fuzz.rs`): a seeded PRNG and
//! byte-level and grammar-aware mutations. Everything is a pure function of the seed, so
//! the n-th input of a run can be generated again without running the ones before it.
//!
//! Byte level: bit flips, interesting bytes, inserts, deletes, repeated chunks,
//! truncations, splices between seeds, tokens of the input's grammar. Grammar aware (on an
//! input that parses): JSON, YAML and TOML trees written back with one edit — a huge or
//! odd number, a long string, deep nesting, a duplicate key, a dropped or unknown member, a
//! repeated element, a value of another type, and for YAML anchors, aliases, alias bombs,
//! merge keys and tags. Base64 strings inside JSON (payloads, certificates, log entries) are
//! decoded, mutated as what they hold (JSON or DER) and encoded again, so nested formats
//! are reached through their envelopes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A small, fast, seeded PRNG (SplitMix64): the same seed gives the same inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True once in `n` times.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A number in `0..n`, small ones far more likely (sizes, counts, depths).
    pub fn small(&mut self, n: usize) -> usize {
        let bits = self.below(usize::BITS as usize - n.leading_zeros() as usize + 1);
        self.below(
            1usize
                .checked_shl(bits as u32)
                .unwrap_or(usize::MAX)
                .min(n.max(1)),
        )
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What the inputs of a target are, for grammar-aware mutations and token dictionaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    /// JSON documents.
    Json,
    /// YAML documents.
    Yaml,
    /// TOML documents.
    Toml,
    /// One-line text (references, digests).
    Text,
    /// DER or PEM (certificates, keys).
    Der,
}

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1e400",
    "-1e400",
    "1e-400",
    "18446744073709551616",
    "-9223372036854775809",
    "9007199254740993",
    "4.35",
    "1.0",
    "\\u0000",
    "\\ud800",
    "\\udc00",
    "\\\"",
    "\\\\",
    "\"\":",
    "{}",
    "[]",
    "\"sha256:\"",
    "\"sha512:\"",
    "\u{feff}",
    "\u{2028}",
    "é",
];
const YAML_TOKENS: &[&str] = &[
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    "!!str ",
    "!!int ",
    "!!float ",
    "!custom ",
    "- ",
    "? ",
    ": ",
    "|\n",
    ">-\n",
    "---\n",
    "...\n",
    "~",
    ".nan",
    ".inf",
    "-.inf",
    "0x1F",
    "0o17",
    "1e400",
    "18446744073709551616",
    "\t",
    "  ",
    "\n",
    "'",
    "\"",
    "[",
    "]",
    "{",
    "}",
    ",",
    "#",
    "%YAML 1.2\n",
    "%TAG ! tag:x,2000:\n",
    "\\u0000",
    "\u{feff}",
    "é",
    "null",
    "yes",
    "on",
];
const TOML_TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    " = ",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "{",
    "}",
    ",",
    ".",
    "\n",
    "#",
    "inf",
    "-inf",
    "nan",
    "+nan",
    "0x7fffffffffffffff",
    "0o777",
    "0b101",
    "9223372036854775808",
    "-9223372036854775809",
    "1e400",
    "1979-05-27T07:32:00Z",
    "1979-05-27",
    "07:32:00",
    "true",
    "false",
    "\\u0000",
    "\\U0010FFFF",
    "é",
    "# WHARF__PROJECT__NAME=",
    "# WHARF__ENVIRONMENTS__PROD__REPLICAS=",
    "# WHARF____X=1",
];
const TEXT_TOKENS: &[&str] = &[
    "/",
    ":",
    "@",
    "@sha256:",
    "@sha512:",
    "sha256:",
    ".",
    "_",
    "__",
    "-",
    "[",
    "]",
    "::1",
    "localhost",
    "docker.io/",
    "index.docker.io/",
    "library/",
    "latest",
    "A",
    "é",
    "\u{0}",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
];
const DER_TOKENS: &[&[u8]] = &[
    &[0x30, 0x80],
    &[0x30, 0x81, 0xff],
    &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
    &[0x30, 0x88, 0, 0, 0, 0, 0, 0, 0, 1],
    &[0x06, 0x00],
    &[0x05, 0x00],
    &[0x17, 0x0d],
    &[0x18, 0x0f],
    &[0xa0, 0x03, 0x02, 0x01, 0x02],
    &[0xa3, 0x00],
    &[0x04, 0x00],
    &[0x0c, 0x02, 0xc3, 0xa9],
    &[0x1f, 0x81],
    &[0xff],
    b"-----BEGIN CERTIFICATE-----\n",
    b"-----END CERTIFICATE-----\n",
    b"-----BEGIN PUBLIC KEY-----\n",
];

/// Mutate `input` (one of the `seeds`) into a new input of at most `max_len` bytes.
pub fn mutate(
    input: &[u8],
    seeds: &[Vec<u8>],
    grammar: Grammar,
    rng: &mut Rng,
    max_len: usize,
) -> Vec<u8> {
    let mut out = if rng.one_in(2) {
        grammar_mutation(input, grammar, rng, max_len).unwrap_or_else(|| input.to_vec())
    } else {
        input.to_vec()
    };
    let rounds = 1 + rng.small(8);
    for _ in 0..rounds {
        byte_mutation(&mut out, seeds, grammar, rng, max_len);
    }
    out.truncate(max_len);
    out
}

fn token<'a>(grammar: Grammar, rng: &mut Rng) -> &'a [u8] {
    match grammar {
        Grammar::Json => rng.pick(JSON_TOKENS).as_bytes(),
        Grammar::Yaml => rng.pick(YAML_TOKENS).as_bytes(),
        Grammar::Toml => rng.pick(TOML_TOKENS).as_bytes(),
        Grammar::Text => rng.pick(TEXT_TOKENS).as_bytes(),
        Grammar::Der => rng.pick::<&[u8]>(DER_TOKENS),
    }
}

const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0x81, 0xff, 0xfe, b'"', b'\\', b'{', b'[', b'\n', b':', b' ', 0xc3, 0xe2,
];

/// One byte-level edit.
fn byte_mutation(
    data: &mut Vec<u8>,
    seeds: &[Vec<u8>],
    grammar: Grammar,
    rng: &mut Rng,
    max_len: usize,
) {
    let len = data.len();
    let pos = rng.below(len + 1);
    match rng.below(13) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = *rng.pick(INTERESTING);
        }
        2 => {
            let n = 1 + rng.small(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            splice_in(data, pos, &bytes, max_len);
        }
        3 | 4 => {
            let t = token(grammar, rng).to_vec();
            splice_in(data, pos, &t, max_len);
        }
        5 if len > 0 => {
            let n = 1 + rng.small(len - pos.min(len - 1));
            let start = pos.min(len - 1);
            data.drain(start..(start + n).min(len));
        }
        6 if len > 0 => {
            // A chunk repeated: long runs, repeated members, nesting.
            let start = rng.below(len);
            let n = 1 + rng.small((len - start).min(256));
            let chunk = data[start..start + n].to_vec();
            let most = if rng.one_in(8) { 4096 } else { 16 };
            let times = 1 + rng.small(most);
            let mut rep = Vec::with_capacity(chunk.len() * times);
            for _ in 0..times {
                if rep.len() + chunk.len() > max_len {
                    break;
                }
                rep.extend_from_slice(&chunk);
            }
            splice_in(data, start, &rep, max_len);
        }
        7 if len > 0 => data.truncate(rng.below(len)),
        8 if !seeds.is_empty() => {
            // Splice: our head, another seed's tail.
            let other = rng.pick(seeds);
            let cut = rng.below(other.len() + 1);
            data.truncate(pos);
            data.extend_from_slice(&other[cut..]);
        }
        9 if !seeds.is_empty() => {
            let other = rng.pick(seeds);
            if !other.is_empty() {
                let start = rng.below(other.len());
                let n = 1 + rng.small(other.len() - start);
                let chunk = other[start..start + n].to_vec();
                splice_in(data, pos, &chunk, max_len);
            }
        }
        10 if len > 1 => {
            // Overwrite a range with a copy of another range of the input.
            let from = rng.below(len);
            let to = rng.below(len);
            let n = 1 + rng.small((len - from).min(len - to));
            let chunk = data[from..from + n].to_vec();
            data[to..to + n].copy_from_slice(&chunk);
        }
        11 if len > 2 => {
            // A multibyte character over the same number of bytes: lengths stay right,
            // and code slicing text by byte offsets meets a character boundary.
            let ch = *rng.pick(&["\u{e9}", "\u{80}", "\u{2014}", "\u{1f600}", "\u{0}\u{0}"]);
            let i = rng.below(len + 1 - ch.len().min(len));
            let end = (i + ch.len()).min(len);
            data[i..end].copy_from_slice(&ch.as_bytes()[..end - i]);
        }
        _ => {
            if let Some(i) = (0..len).find(|_| rng.one_in(8)) {
                // Swap a digit for a big number (lengths, sizes, counts).
                if data[i].is_ascii_digit() {
                    let big = *rng.pick(&["99999999999999999999", "4294967296", "0", "-1"]);
                    data.splice(i..i + 1, big.bytes());
                }
            }
        }
    }
    data.truncate(max_len);
}

fn splice_in(data: &mut Vec<u8>, pos: usize, bytes: &[u8], max_len: usize) {
    let room = max_len.saturating_sub(data.len());
    let bytes = &bytes[..bytes.len().min(room)];
    let pos = pos.min(data.len());
    data.splice(pos..pos, bytes.iter().copied());
}

/// One structural edit, where the input parses in its grammar.
fn grammar_mutation(
    input: &[u8],
    grammar: Grammar,
    rng: &mut Rng,
    max_len: usize,
) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(input).ok();
    match grammar {
        Grammar::Json => {
            // A JSON-lines file (in-toto bundles) is mutated one line at a time.
            let text = text?;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
                return Some(json_mutation(&v, rng, max_len).into_bytes());
            }
            let lines: Vec<&str> = text.lines().collect();
            let i = rng.below(lines.len());
            let v = serde_json::from_str::<serde_json::Value>(lines.get(i)?).ok()?;
            let mut out = String::new();
            for (j, l) in lines.iter().enumerate() {
                if j == i {
                    out.push_str(&json_mutation(&v, rng, max_len));
                } else {
                    out.push_str(l);
                }
                out.push('\n');
            }
            Some(out.into_bytes())
        }
        Grammar::Yaml => {
            let text = text?;
            if rng.one_in(2) {
                return Some(line_mutation(text, Grammar::Yaml, rng, max_len).into_bytes());
            }
            let v: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
            Some(yaml_mutation(&v, rng, max_len).into_bytes())
        }
        Grammar::Toml => {
            let text = text?;
            if rng.one_in(2) {
                return Some(line_mutation(text, Grammar::Toml, rng, max_len).into_bytes());
            }
            let t: toml::Table = toml::from_str(text).ok()?;
            // Keep the override comments at the top (the wharf_toml target reads them).
            let head: String = text
                .lines()
                .take_while(|l| l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect();
            Some(format!("{head}{}", toml_mutation(&t, rng, max_len)).into_bytes())
        }
        Grammar::Der => {
            if let Some(text) = text
                && text.contains("-----BEGIN")
            {
                return pem_mutation(text, rng, max_len).map(String::into_bytes);
            }
            Some(der_mutation(input, rng))
        }
        Grammar::Text => None,
    }
}

// ---------------------------------------------------------------------------------------
// Replacement values shared by the tree mutators.

/// A value text in the JSON-compatible subset every grammar here reads (YAML flow, TOML
/// inline, JSON): odd numbers, long strings, deep nesting.
fn odd_value(rng: &mut Rng, max_len: usize, grammar: Grammar) -> String {
    let depth_cap = (max_len / 2).max(1);
    match rng.below(13) {
        0 => rng
            .pick(&[
                "1e400",
                "-1e400",
                "18446744073709551616",
                "18446744073709551615",
                "-9223372036854775808",
                "-9223372036854775809",
                "0.1e-400",
                "-0",
                "4294967296",
                "123456789012345678901234567890123456789",
            ])
            .to_string(),
        1 => {
            let n = 1 + rng.small(max_len.min(1 << 18));
            let c = *rng.pick(&["a", "é", "\\u0000", "\\\"", " ", "/"]);
            format!("\"{}\"", c.repeat(n / c.len().max(1)))
        }
        2 | 3 => {
            let most = if rng.one_in(4) { 200_000 } else { 300 };
            let depth = 1 + rng.small(depth_cap.min(most));
            let (open, close) = match (grammar, rng.below(2)) {
                (_, 0) => ("[", "]"),
                (Grammar::Toml, _) => ("{a=", "}"),
                _ => ("{\"a\":", "}"),
            };
            format!("{}1{}", open.repeat(depth), close.repeat(depth))
        }
        4 => match grammar {
            Grammar::Toml => rng
                .pick(&["{}", "[]", "\"\"", "true", "0", "nan", "inf"])
                .to_string(),
            Grammar::Yaml => rng
                .pick(&[
                    "{}",
                    "[]",
                    "\"\"",
                    "~",
                    ".nan",
                    ".inf",
                    "!!binary AA==",
                    "yes",
                    "0x10",
                ])
                .to_string(),
            _ => rng
                .pick(&["{}", "[]", "\"\"", "null", "true", "0"])
                .to_string(),
        },
        5 => match grammar {
            Grammar::Toml => "\"\\ud800\"".into(),
            _ => "\"\\ud800\\udc00\\u0000\\ud800\"".into(),
        },
        6 => "\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"".into(),
        7 => "\"1970-01-01T00:00:00Z\"".into(),
        8 => "\"9999-12-31T23:59:60+23:59\"".into(),
        9 => format!("{}", rng.next_u64() as i64),
        10 => format!("{:e}", f64::from_bits(rng.next_u64())),
        _ => "\"\"".into(),
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

// ---------------------------------------------------------------------------------------
// JSON.

struct Edit<'r> {
    rng: &'r mut Rng,
    /// The node (in pre-order) the edit applies to.
    target: usize,
    seen: usize,
    max_len: usize,
}

impl Edit<'_> {
    fn hit(&mut self) -> bool {
        let hit = self.seen == self.target;
        self.seen += 1;
        hit
    }
}

fn count_json(v: &serde_json::Value) -> usize {
    1 + match v {
        serde_json::Value::Array(a) => a.iter().map(count_json).sum(),
        serde_json::Value::Object(o) => o.values().map(count_json).sum(),
        _ => 0,
    }
}

/// `v` written back as JSON with one edit at a random node.
fn json_mutation(v: &serde_json::Value, rng: &mut Rng, max_len: usize) -> String {
    let target = rng.below(count_json(v));
    let mut edit = Edit {
        rng,
        target,
        seen: 0,
        max_len,
    };
    let mut out = String::new();
    write_json(v, &mut out, &mut edit);
    out
}

fn write_json(v: &serde_json::Value, out: &mut String, e: &mut Edit<'_>) {
    use serde_json::Value;
    if e.hit() {
        match e.rng.below(6) {
            0 | 1 => {
                out.push_str(&odd_value(e.rng, e.max_len, Grammar::Json));
                return;
            }
            2 => {
                // Another type.
                let other = match v {
                    Value::String(s) => s.len().to_string(),
                    Value::Number(n) => json_string(&n.to_string()),
                    Value::Array(_) => "{}".into(),
                    Value::Object(_) => "[]".into(),
                    Value::Bool(_) | Value::Null => "\"x\"".into(),
                };
                out.push_str(&other);
                return;
            }
            3 => {
                if let Value::String(s) = v
                    && let Some(inner) = nested_mutation(s, e.rng, e.max_len)
                {
                    out.push_str(&json_string(&inner));
                    return;
                }
            }
            _ => {}
        }
        // Structural edits of containers fall through with `container_edit` set.
        return write_json_container(v, out, e, true);
    }
    write_json_container(v, out, e, false)
}

fn write_json_container(v: &serde_json::Value, out: &mut String, e: &mut Edit<'_>, edit: bool) {
    use serde_json::Value;
    match v {
        Value::Array(items) => {
            out.push('[');
            let op = if edit { e.rng.below(3) } else { 9 };
            let pick = e.rng.below(items.len().max(1));
            let mut first = true;
            for (i, item) in items.iter().enumerate() {
                let times = match op {
                    0 if i == pick => 0,                     // drop
                    1 if i == pick => 2 + e.rng.small(2000), // repeat
                    _ => 1,
                };
                for _ in 0..times {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    if out.len() > e.max_len {
                        break;
                    }
                    write_json(item, out, e);
                }
            }
            if op == 2 {
                if !first {
                    out.push(',');
                }
                out.push_str(&odd_value(e.rng, e.max_len, Grammar::Json));
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            let op = if edit { e.rng.below(4) } else { 9 };
            let pick = e.rng.below(map.len().max(1));
            let mut first = true;
            for (i, (k, val)) in map.iter().enumerate() {
                let times = match op {
                    0 if i == pick => 0, // drop a member
                    1 if i == pick => 2, // duplicate key
                    _ => 1,
                };
                for t in 0..times {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&json_string(k));
                    out.push(':');
                    if t == 1 {
                        out.push_str(&odd_value(e.rng, e.max_len, Grammar::Json));
                    } else {
                        write_json(val, out, e);
                    }
                }
            }
            if op == 2 {
                // An unknown member.
                if !first {
                    out.push(',');
                }
                let key = *e
                    .rng
                    .pick(&["zz", "", "mediaType", "_type", "\u{0}", "hash"]);
                out.push_str(&json_string(key));
                out.push(':');
                out.push_str(&odd_value(e.rng, e.max_len, Grammar::Json));
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A string that holds another format: base64 (of JSON or binary) or PEM, mutated inside.
fn nested_mutation(s: &str, rng: &mut Rng, max_len: usize) -> Option<String> {
    if s.contains("-----BEGIN") {
        return pem_mutation(s, rng, max_len);
    }
    if s.len() < 8 {
        return None;
    }
    let bytes = STANDARD.decode(s.trim()).ok()?;
    let inner = match std::str::from_utf8(&bytes).ok() {
        Some(text) if text.contains("-----BEGIN") => pem_mutation(text, rng, max_len)?.into_bytes(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => json_mutation(&v, rng, max_len).into_bytes(),
            Err(_) => mutate(&bytes, &[], Grammar::Text, rng, max_len),
        },
        None => {
            if rng.one_in(2) {
                der_mutation(&bytes, rng)
            } else {
                mutate(&bytes, &[], Grammar::Der, rng, max_len)
            }
        }
    };
    Some(STANDARD.encode(inner))
}

// ---------------------------------------------------------------------------------------
// DER and PEM.

/// Mutate the DER inside the first PEM block.
fn pem_mutation(text: &str, rng: &mut Rng, max_len: usize) -> Option<String> {
    let begin = text.find("-----BEGIN")?;
    let body_start = begin + text[begin..].find('\n')? + 1;
    let body_end = body_start + text[body_start..].find("-----END")?;
    let body: String = text[body_start..body_end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = STANDARD.decode(body).ok()?;
    let der = if rng.one_in(2) {
        der_mutation(&der, rng)
    } else {
        mutate(&der, &[], Grammar::Der, rng, max_len)
    };
    Some(format!(
        "{}{}\n{}",
        &text[..body_start],
        STANDARD.encode(der),
        &text[body_end..]
    ))
}

/// A TLV-aware edit: a length field rewritten (long form, indefinite, too long, too short),
/// a tag changed, or an element's contents wrapped again (deeper nesting).
fn der_mutation(der: &[u8], rng: &mut Rng) -> Vec<u8> {
    // Walk to a random element header (depth-first through constructed elements).
    let mut headers = Vec::new();
    collect_headers(der, 0, &mut headers, 0);
    if headers.is_empty() {
        return der.to_vec();
    }
    let (at, header_len, body_len) = *rng.pick(&headers);
    let mut out = der[..at].to_vec();
    let tag = der[at];
    let body = &der[at + header_len..at + header_len + body_len];
    let rest = &der[at + header_len + body_len..];
    match rng.below(6) {
        5 if body_len >= 2 => {
            // The same length, a multibyte UTF-8 character inside (names, times, strings).
            out.extend_from_slice(&der[at..at + header_len]);
            let mut body = body.to_vec();
            let i = rng.below(body_len - 1);
            body[i..i + 2].copy_from_slice("\u{e9}".as_bytes());
            out.extend_from_slice(&body);
        }
        0 => {
            // Long-form length with leading zeros (BER, not DER).
            out.push(tag);
            out.extend_from_slice(&[0x84, 0, 0]);
            out.extend_from_slice(&(body_len as u16).to_be_bytes());
            out.extend_from_slice(body);
        }
        1 => {
            // Indefinite length.
            out.extend_from_slice(&[tag, 0x80]);
            out.extend_from_slice(body);
            out.extend_from_slice(&[0, 0]);
        }
        2 => {
            // A length off by some bytes.
            let delta = *rng.pick(&[1i64, -1, 2, -2, 127, 1 << 20, -(1 << 20)]);
            let len = (body_len as i64 + delta).clamp(0, u32::MAX as i64) as u32;
            out.push(tag);
            out.push(0x84);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(body);
        }
        3 => {
            let new_tag = *rng.pick(&[
                0x30, 0x31, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x80, 0x81,
                0x86, 0xa0, 0xa3,
            ]);
            out.push(new_tag);
            out.extend_from_slice(&der[at + 1..at + header_len]);
            out.extend_from_slice(body);
        }
        _ => {
            // Wrap the element in SEQUENCEs.
            let mut el = der[at..at + header_len + body_len].to_vec();
            for _ in 0..1 + rng.small(64) {
                el = der_wrap(0x30, &el);
            }
            out.extend_from_slice(&el);
        }
    }
    out.extend_from_slice(rest);
    out
}

fn der_wrap(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// `(offset, header length, body length)` of every well-formed element in `der`.
fn collect_headers(der: &[u8], base: usize, out: &mut Vec<(usize, usize, usize)>, depth: u32) {
    let mut i = 0;
    while i + 2 <= der.len() && depth < 16 && out.len() < 4096 {
        let tag = der[i];
        let first = der[i + 1];
        let (header, len) = if first < 0x80 {
            (2, first as usize)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || i + 2 + n > der.len() {
                return;
            }
            let len = der[i + 2..i + 2 + n]
                .iter()
                .fold(0usize, |a, b| (a << 8) | *b as usize);
            (2 + n, len)
        };
        if i + header + len > der.len() {
            return;
        }
        out.push((base + i, header, len));
        if tag & 0x20 != 0 {
            collect_headers(
                &der[i + header..i + header + len],
                base + i + header,
                out,
                depth + 1,
            );
        }
        i += header + len;
    }
}

// ---------------------------------------------------------------------------------------
// YAML.

fn count_yaml(v: &serde_yaml::Value) -> usize {
    use serde_yaml::Value;
    1 + match v {
        Value::Sequence(s) => s.iter().map(count_yaml).sum(),
        Value::Mapping(m) => m.values().map(count_yaml).sum(),
        Value::Tagged(t) => count_yaml(&t.value),
        _ => 0,
    }
}

/// `v` written back as flow YAML with one edit: the JSON edits, plus anchors and aliases
/// (an alias of an earlier node, an alias bomb, a merge key), tags, and documents.
fn yaml_mutation(v: &serde_yaml::Value, rng: &mut Rng, max_len: usize) -> String {
    let target = rng.below(count_yaml(v));
    let mut edit = Edit {
        rng,
        target,
        seen: 0,
        max_len,
    };
    let mut out = String::new();
    write_yaml(v, &mut out, &mut edit);
    if edit.rng.one_in(16) {
        out.push_str("\n---\n");
        out.push_str(&odd_value(edit.rng, max_len, Grammar::Yaml));
    }
    out
}

/// An alias bomb: `levels` anchors, each a list of `width` aliases of the one before.
fn alias_bomb(rng: &mut Rng) -> String {
    let levels = 2 + rng.small(10);
    let width = 2 + rng.small(10);
    let mut out = String::from("{l0: &l0 [\"lol\"]");
    for l in 1..levels {
        let items = vec![format!("*l{}", l - 1); width].join(", ");
        out.push_str(&format!(", l{l}: &l{l} [{items}]"));
    }
    out.push('}');
    out
}

/// A long string anchored once and aliased many times: small text, a huge document.
fn string_bomb(rng: &mut Rng, max_len: usize) -> String {
    let len = 1 + rng.small((max_len / 2).min(64 << 10));
    let n = 1 + rng.small(((max_len / 2) / 4).min(20_000));
    format!(
        "{{s: &s \"{}\", l: [{}]}}",
        "x".repeat(len),
        vec!["*s"; n].join(", ")
    )
}

fn yaml_scalar(v: &serde_yaml::Value) -> String {
    use serde_yaml::Value;
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => json_string(s),
        _ => "null".into(),
    }
}

fn write_yaml(v: &serde_yaml::Value, out: &mut String, e: &mut Edit<'_>) {
    use serde_yaml::Value;
    let mut anchor = false;
    if e.hit() {
        match e.rng.below(8) {
            0 | 1 => {
                out.push_str(&odd_value(e.rng, e.max_len, Grammar::Yaml));
                return;
            }
            2 => {
                out.push_str(&if e.rng.one_in(2) {
                    alias_bomb(e.rng)
                } else {
                    string_bomb(e.rng, e.max_len)
                });
                return;
            }
            3 => {
                // Anchor this node; an alias of it follows as a sibling where one fits.
                out.push_str("&fz ");
                anchor = true;
            }
            4 => {
                out.push_str(e.rng.pick::<&str>(&[
                    "!!str ",
                    "!!binary ",
                    "!custom ",
                    "!!map ",
                    "!!seq ",
                ]));
            }
            5 => {
                out.push_str("*undefined_anchor");
                return;
            }
            _ => {}
        }
    }
    match v {
        Value::Sequence(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_yaml(item, out, e);
            }
            out.push(']');
        }
        Value::Mapping(map) => {
            out.push('{');
            for (i, (k, val)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&yaml_scalar(k));
                out.push_str(": ");
                write_yaml(val, out, e);
                if e.rng.one_in(64) {
                    // A duplicate key.
                    out.push_str(", ");
                    out.push_str(&yaml_scalar(k));
                    out.push_str(": ");
                    out.push_str(&odd_value(e.rng, e.max_len, Grammar::Yaml));
                }
            }
            out.push('}');
        }
        Value::Tagged(t) => {
            out.push_str(&format!("{} ", t.tag));
            write_yaml(&t.value, out, e);
        }
        other => out.push_str(&yaml_scalar(other)),
    }
    if anchor {
        // Repeat the anchored node by alias many times right after it, in a list.
        let n = 1 + e.rng.small(64);
        let aliases = vec!["*fz"; n].join(", ");
        let node = std::mem::take(out);
        // `node` ends with the anchored value; wrap the tail in a sequence with aliases.
        if let Some(at) = node.rfind("&fz ") {
            out.push_str(&node[..at]);
            out.push('[');
            out.push_str(&node[at..]);
            out.push_str(", ");
            out.push_str(&aliases);
            out.push(']');
        } else {
            out.push_str(&node);
        }
    }
}

// ---------------------------------------------------------------------------------------
// TOML.

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_owned()
    } else {
        json_string(k)
    }
}

fn toml_inline(v: &toml::Value, out: &mut String) {
    use toml::Value;
    match v {
        Value::String(s) => out.push_str(&json_string(s)),
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::Float(f) if f.is_nan() => out.push_str("nan"),
        Value::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { "inf" } else { "-inf" }),
        Value::Float(f) => out.push_str(&format!("{f:?}")),
        Value::Boolean(b) => out.push_str(&b.to_string()),
        Value::Datetime(d) => out.push_str(&d.to_string()),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                toml_inline(item, out);
            }
            out.push(']');
        }
        Value::Table(t) => {
            out.push('{');
            for (i, (k, item)) in t.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&toml_key(k));
                out.push_str(" = ");
                toml_inline(item, out);
            }
            out.push('}');
        }
    }
}

fn count_toml(t: &toml::Table) -> usize {
    t.values()
        .map(|v| match v {
            toml::Value::Table(t) => 1 + count_toml(t),
            _ => 1,
        })
        .sum()
}

/// `t` written back as TOML (`[section]` headers, inline values) with one edit at a key:
/// an odd value, a duplicate key or table, a dropped key, an unknown key, an array of
/// tables where a table belongs.
fn toml_mutation(t: &toml::Table, rng: &mut Rng, max_len: usize) -> String {
    let target = rng.below(count_toml(t).max(1));
    let mut edit = Edit {
        rng,
        target,
        seen: 0,
        max_len,
    };
    let mut out = String::new();
    write_toml_table(t, &[], &mut out, &mut edit);
    out
}

fn write_toml_table(t: &toml::Table, path: &[String], out: &mut String, e: &mut Edit<'_>) {
    let header = |path: &[String], double: bool| {
        let p: Vec<String> = path.iter().map(|k| toml_key(k)).collect();
        if double {
            format!("[[{}]]\n", p.join("."))
        } else {
            format!("[{}]\n", p.join("."))
        }
    };
    let mut tables = Vec::new();
    for (k, v) in t {
        if let toml::Value::Table(sub) = v {
            tables.push((k, sub));
            continue;
        }
        let hit = e.hit();
        let op = if hit { e.rng.below(5) } else { 9 };
        if op == 0 {
            continue; // dropped
        }
        out.push_str(&toml_key(k));
        out.push_str(" = ");
        if op == 1 {
            out.push_str(&odd_value(e.rng, e.max_len, Grammar::Toml));
        } else {
            toml_inline(v, out);
        }
        out.push('\n');
        if op == 2 {
            out.push_str(&format!("{} = ", toml_key(k)));
            toml_inline(v, out);
            out.push('\n');
        } else if op == 3 {
            out.push_str(&format!(
                "{} = {}\n",
                e.rng.pick(&["zz", "\"\"", "a.b.c", "\"\\u0000\""]),
                odd_value(e.rng, e.max_len, Grammar::Toml)
            ));
        }
    }
    for (k, sub) in tables {
        let mut p = path.to_vec();
        p.push(k.clone());
        let hit = e.hit();
        let op = if hit { e.rng.below(4) } else { 9 };
        if op == 0 {
            continue;
        }
        out.push('\n');
        out.push_str(&header(&p, op == 1));
        write_toml_table(sub, &p, out, e);
        if op == 2 {
            // The same table twice.
            out.push('\n');
            out.push_str(&header(&p, false));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Line-level edits (YAML and TOML keep their block layout).

fn line_mutation(text: &str, grammar: Grammar, rng: &mut Rng, max_len: usize) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let i = rng.below(lines.len());
    match rng.below(8) {
        0 => {
            let l = lines[i].clone();
            lines.insert(i, l); // duplicate key
        }
        1 => {
            lines.remove(i);
        }
        2 => {
            if rng.one_in(2) {
                lines[i].insert_str(0, "  ");
            } else {
                let trimmed = lines[i].trim_start().to_owned();
                lines[i] = trimmed;
            }
        }
        3 => {
            // Replace the value after `: ` or ` = `.
            let sep = if grammar == Grammar::Toml {
                " = "
            } else {
                ": "
            };
            if let Some(at) = lines[i].find(sep) {
                let v = odd_value(rng, max_len, grammar);
                lines[i].truncate(at + sep.len());
                lines[i].push_str(&v);
            }
        }
        4 if grammar == Grammar::Yaml => {
            // An anchor on one value, an alias of it on another.
            let j = rng.below(lines.len());
            if let (Some(a), Some(b)) = (lines[i].find(": "), lines[j].find(": ")) {
                lines[i].insert_str(a + 2, "&fz ");
                if j != i {
                    lines[j].truncate(b + 2);
                    lines[j].push_str("*fz");
                }
            }
        }
        5 => {
            let t = String::from_utf8_lossy(token(grammar, rng)).into_owned();
            lines.insert(i, t);
        }
        6 if grammar == Grammar::Yaml => {
            // Deep block nesting: a key per level, one more space each (text ~ depth²/2).
            let most = ((2 * max_len) as f64).sqrt() as usize;
            let depth = 1 + rng.small(most.min(1000));
            let block: Vec<String> = (0..depth)
                .map(|d| {
                    format!(
                        "{}{}",
                        " ".repeat(d),
                        if rng.one_in(2) { "a:" } else { "- a:" }
                    )
                })
                .collect();
            lines.splice(i..i, block);
        }
        _ => {
            // A block repeated: many keys, many list items.
            let n = 1 + rng.small(lines.len() - i);
            let block: Vec<String> = lines[i..i + n].to_vec();
            for _ in 0..1 + rng.small(256) {
                lines.splice(i..i, block.iter().cloned());
                if lines.iter().map(String::len).sum::<usize>() > max_len {
                    break;
                }
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let seeds = vec![br#"{"a":[1,2,{"b":"c"}],"d":"aGVsbG8gd29ybGQ="}"#.to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|_| mutate(&seeds[0], &seeds, Grammar::Json, &mut rng, 4096))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        assert!(run(7).iter().all(|m| m.len() <= 4096));
    }

    #[test]
    fn grammar_mutations_mostly_keep_the_grammar() {
        let mut rng = Rng::new(1);
        let json = br#"{"a":[1,2,{"b":"c"}],"d":"eyJ4IjoxfQ=="}"#;
        let ok = (0..200)
            .filter_map(|_| grammar_mutation(json, Grammar::Json, &mut rng, 1 << 16))
            .filter(|m| serde_json::from_slice::<serde_json::Value>(m).is_ok())
            .count();
        assert!(ok > 50, "{ok} of 200 JSON mutations parse");
        let yaml = b"a: 1\nb:\n  - x\n  - y\nc: {d: e}\n";
        let ok = (0..200)
            .filter_map(|_| grammar_mutation(yaml, Grammar::Yaml, &mut rng, 1 << 16))
            .filter(|m| serde_yaml::from_slice::<serde_yaml::Value>(m).is_ok())
            .count();
        assert!(ok > 50, "{ok} of 200 YAML mutations parse");
        let toml_text = b"[a]\nb = 1\nc = [\"x\"]\n[a.d]\ne = true\n";
        let ok = (0..200)
            .filter_map(|_| grammar_mutation(toml_text, Grammar::Toml, &mut rng, 1 << 16))
            .filter(|m| {
                std::str::from_utf8(m).is_ok_and(|t| toml::from_str::<toml::Table>(t).is_ok())
            })
            .count();
        assert!(ok > 50, "{ok} of 200 TOML mutations parse");
    }

    #[test]
    fn der_edits_stay_inside_the_input() {
        let mut rng = Rng::new(3);
        let der = der_wrap(0x30, &der_wrap(0x30, &[0x02, 0x01, 0x05, 0x04, 0x00]));
        for _ in 0..500 {
            let m = der_mutation(&der, &mut rng);
            assert!(!m.is_empty());
        }
    }
}
