//! Bounds checked before a manifest is parsed: its size, how deep its flow collections
//! nest, and how far YAML aliases expand it.
//!
//! Why these three and why here: serde_yaml (libyaml) reads the whole document into events
//! before deserializing, and two shapes of hostile input defeat that:
//!
//! * **Deep flow nesting** (`[[[[…` or `{a: {a: …`): libyaml's scanner walks its stack of
//!   possible simple keys, one per open flow collection, for every token, so a 200 KB
//!   document nested 100 000 deep takes minutes before serde_yaml's own recursion limit
//!   (128) is reached. [`flow_depth_over`] bounds the depth on the text, in one pass, first.
//!   Block nesting (indentation) is linear in libyaml and stopped by serde_yaml's recursion
//!   limit, so only flow collections need the pre-scan.
//! * **Alias expansion** ("billion laughs"): every `*alias` replays its anchored node, and
//!   serde_yaml builds a new value each time; a 1 MB manifest repeating a 400 KB string
//!   through aliases needs tens of gigabytes. [`expansion_over`] walks the document with
//!   the real parser and a budget, allocating nothing, and stops as soon as the expanded
//!   document outgrows what its text could hold without aliases.
//!
//! Manifests have no use for aliases, deep nesting or megabytes of text, so the limits are
//! far above any real manifest (the example is 1 KB, 3 levels deep) and the errors say
//! what to write instead.

use std::cell::Cell;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, Visitor};

/// Where the scan found flow collections nested deeper than the limit: 1-based line and
/// column (in characters).
pub(crate) type Position = (usize, usize);

/// The lexer states of a flow collection, as libyaml's scanner has them.
#[derive(Clone, Copy)]
enum S {
    /// Between tokens (after `[`, `,`, `:`, whitespace, a quoted scalar…).
    Token,
    /// Inside a plain scalar's run of non-blank characters.
    Plain,
    /// Inside a plain scalar, after blanks or line breaks.
    PlainSpace,
    /// After `#`, up to the line break.
    Comment,
    /// Inside `'…'`.
    Single,
    /// Inside `'…'`, just after a `'` (a second one is an escaped quote).
    SingleEnd,
    /// Inside `"…"`.
    Double,
    /// Inside `"…"`, after a backslash.
    DoubleEscape,
    /// An anchor or alias name (`&a`, `*a`).
    Anchor,
    /// A tag (`!t`).
    Tag,
}

const STATES: usize = 10;

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Blank, line break or end of input (libyaml's `IS_BLANKZ`).
fn blankz(c: Option<char>) -> bool {
    c.is_none_or(|c| is_blank(c) || is_break(c) || c == '\0')
}

/// A state reached after one character: the lexer state and the flow depth, or `None` when
/// the outermost flow collection closed (back to block context).
type Next = Option<(S, u32)>;

/// libyaml's `fetch_next_token` in flow context, for the token starting with `c`.
fn token(c: char, next: Option<char>, d: u32) -> Next {
    Some(match c {
        '[' | '{' => (S::Token, d + 1),
        ']' | '}' => return (d > 1).then(|| (S::Token, d - 1)),
        '#' => (S::Comment, d),
        '*' | '&' => (S::Anchor, d),
        '!' => (S::Tag, d),
        '\'' => (S::Single, d),
        '"' => (S::Double, d),
        '-' if blankz(next) => (S::Token, d),
        // Blanks, breaks, `,` `?` `:` (indicators in flow context), and characters that
        // cannot start a token (libyaml stops there, so any state is sound).
        c if is_blank(c) || is_break(c) => (S::Token, d),
        ',' | '?' | ':' | '|' | '>' | '%' | '@' | '`' => (S::Token, d),
        _ => (S::Plain, d),
    })
}

/// libyaml's `scan_plain_scalar` in flow context, inside a run of non-blank characters.
fn plain(c: char, next: Option<char>, d: u32) -> Next {
    match c {
        ':' if blankz(next) => token(c, next, d),
        ',' | '[' | ']' | '{' | '}' => token(c, next, d),
        c if is_blank(c) || is_break(c) => Some((S::PlainSpace, d)),
        _ => Some((S::Plain, d)),
    }
}

/// The states `state` at depth `d` can reach on `c`; `col0` is true at a line's start.
/// Where libyaml could go two ways the scan keeps both.
fn step(state: S, c: char, next: Option<char>, col0: bool, d: u32) -> [Next; 2] {
    match state {
        // A byte order mark is skipped at a line's start, else it is text: keep both.
        S::Token if c == BOM => [Some((S::Plain, d)), col0.then_some((S::Token, d))],
        S::Token => [token(c, next, d), None],
        S::Plain => [plain(c, next, d), None],
        S::PlainSpace => match c {
            c if is_blank(c) || is_break(c) => [Some((S::PlainSpace, d)), None],
            '#' => [Some((S::Comment, d)), None],
            // (`---` or `...` at a line's start would end the scalar too, but that is an
            // error in flow context, where libyaml stops.)
            _ => [plain(c, next, d), None],
        },
        S::Comment if is_break(c) => [Some((S::Token, d)), None],
        S::Comment => [Some((S::Comment, d)), None],
        S::Single if c == '\'' => [Some((S::SingleEnd, d)), None],
        S::Single => [Some((S::Single, d)), None],
        S::SingleEnd if c == '\'' => [Some((S::Single, d)), None],
        S::SingleEnd => [token(c, next, d), None],
        S::Double if c == '\\' => [Some((S::DoubleEscape, d)), None],
        S::Double if c == '"' => [Some((S::Token, d)), None],
        S::Double | S::DoubleEscape => [Some((S::Double, d)), None],
        S::Anchor if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {
            [Some((S::Anchor, d)), None]
        }
        S::Anchor => [token(c, next, d), None],
        S::Tag if is_blank(c) || is_break(c) => [Some((S::Token, d)), None],
        // A `,` ends a tag, or belongs to a verbatim one: both.
        S::Tag if c == ',' => [Some((S::Tag, d)), token(c, next, d)],
        S::Tag => [Some((S::Tag, d)), None],
    }
}

const BOM: char = '\u{feff}';

/// The character at byte `i` as the lexer needs it, and its length in bytes: ASCII as is,
/// the Unicode line breaks libyaml knows as `\n`, the byte order mark as itself, and any
/// other character as `x` (text to the lexer).
fn char_at(bytes: &[u8], i: usize) -> Option<(char, usize)> {
    let b = *bytes.get(i)?;
    if b < 0x80 {
        return Some((char::from(b), 1));
    }
    let width = match b {
        0xf0.. => 4,
        0xe0.. => 3,
        _ => 2,
    };
    let c = match bytes.get(i..i + width) {
        Some([0xc2, 0x85] | [0xe2, 0x80, 0xa8 | 0xa9]) => '\n',
        Some([0xef, 0xbb, 0xbf]) => BOM,
        _ => 'x',
    };
    Some((c, width))
}

/// The first position where flow collections (`[…]`, `{…}`) nest deeper than `limit`, as
/// libyaml would read the text; `None` when they never do.
///
/// One pass, no allocation. Block context is not lexed at all: every `[` or `{` anywhere
/// starts a candidate flow collection, and each candidate is lexed with libyaml's
/// flow-context rules (quoted and plain scalars, comments, anchors, tags), which do not
/// depend on the block structure around them. So the collection libyaml really opens is
/// always among the candidates, and the deepest candidate is at least as deep as libyaml's
/// real nesting: quoting or commenting brackets cannot evade the bound (a unit test checks
/// this against libyaml on thousands of generated documents). Candidates in the same lexer
/// state behave alike from then on, so only the deepest per state is kept (ten at most).
/// The price of not lexing block context: brackets in block text count too, so more than
/// `limit` unclosed brackets in a row, even in a quoted string, are refused.
pub(crate) fn flow_depth_over(text: &str, limit: u32) -> Option<Position> {
    let bytes = text.as_bytes();
    // The deepest candidate per lexer state (0: none).
    let mut depth = [0u32; STATES];
    let mut live = false;
    let mut i = 0;
    let mut col0 = true;
    while i < bytes.len() {
        if !live {
            // Nothing open: skip to the next bracket.
            let skip = bytes[i..].iter().position(|&b| b == b'[' || b == b'{')?;
            if skip > 0 {
                col0 = matches!(bytes[i + skip - 1], b'\n' | b'\r');
            }
            i += skip;
        }
        let Some((c, width)) = char_at(bytes, i) else {
            break;
        };
        let next = char_at(bytes, i + width).map(|(c, _)| c);
        let mut after = [0u32; STATES];
        for (s, &d) in STATE_OF.iter().zip(&depth) {
            if d == 0 {
                continue;
            }
            for (s, d) in step(*s, c, next, col0, d).into_iter().flatten() {
                let slot = &mut after[s as usize];
                *slot = (*slot).max(d);
            }
        }
        if c == '[' || c == '{' {
            // A flow collection may start here (in block context).
            after[S::Token as usize] = after[S::Token as usize].max(1);
        }
        if after.iter().any(|&d| d > limit) {
            return Some(position(text, i));
        }
        live = after.iter().any(|&d| d > 0);
        depth = after;
        col0 = is_break(c);
        i += width;
    }
    None
}

/// The lexer states, by their index.
const STATE_OF: [S; STATES] = [
    S::Token,
    S::Plain,
    S::PlainSpace,
    S::Comment,
    S::Single,
    S::SingleEnd,
    S::Double,
    S::DoubleEscape,
    S::Anchor,
    S::Tag,
];

/// The 1-based line and column (in characters) of byte `offset`.
fn position(text: &str, offset: usize) -> Position {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The result of walking a document with an expansion budget.
pub(crate) enum Expansion {
    /// The expanded document fits the budget.
    Within,
    /// It outgrew the budget (aliases replaying large nodes).
    Over,
    /// The YAML does not parse; the typed parse reports where.
    Unparsed,
}

/// Walk `text` with serde_yaml (libyaml: the same reading the typed parse will have),
/// charging every node one unit plus its string's length, and stop once `budget` is
/// spent. Aliases are replayed by the parser as they would be for the typed parse, so this
/// is exactly the size that parse would build, measured without building it.
pub(crate) fn expansion_over(text: &str, budget: usize) -> Expansion {
    let left = Cell::new(budget);
    let over = Cell::new(false);
    let walk = Walk {
        left: &left,
        over: &over,
    };
    match walk.deserialize(serde_yaml::Deserializer::from_str(text)) {
        Ok(()) => Expansion::Within,
        Err(_) if over.get() => Expansion::Over,
        Err(_) => Expansion::Unparsed,
    }
}

/// A node visitor that spends a shared budget.
#[derive(Clone, Copy)]
struct Walk<'a> {
    left: &'a Cell<usize>,
    over: &'a Cell<bool>,
}

impl Walk<'_> {
    fn charge<E: de::Error>(self, units: usize) -> Result<(), E> {
        match self.left.get().checked_sub(units.saturating_add(1)) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.over.set(true);
                Err(E::custom("expansion budget exceeded"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.charge(v.len())
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.charge(v.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.charge(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.charge(0)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.charge(0)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`): charge the value.
        let (IgnoredAny, variant) = data.variant()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str) -> bool {
        flow_depth_over(text, 4).is_none()
    }

    #[test]
    fn counts_real_flow_nesting_and_names_the_position() {
        assert!(depth_ok("a: [[[[x]]]]\n"));
        assert_eq!(flow_depth_over("a: [[[[[x]]]]]\n", 4), Some((1, 8)));
        assert_eq!(
            flow_depth_over("a: 1\nb: {c: {d: [[[x]]]}}\n", 4),
            Some((2, 14))
        );
        // Balanced collections one after another do not add up.
        assert!(depth_ok(&"- {name: a, version: '1'}\n".repeat(1000)));
    }

    #[test]
    fn quoted_or_commented_closers_do_not_hide_nesting() {
        // libyaml reads `"]"` and `']'` as scalars and `# ]` as a comment: still 5 deep.
        for hostile in [
            "a: [ \"]\", [ \"]\", [ \"]\", [ \"]\", [ x ] ] ] ] ]\n",
            "a: [ ']', [ ']', [ ']', [ ']', [ x ] ] ] ] ]\n",
            "a: [ # ]\n [ # ]\n [ # ]\n [ # ]\n [ x ] ] ] ] ]\n",
            // A quote inside a plain scalar is text, not the start of a quoted scalar.
            "a: [b 'c, [ [ [ [ x ] ] ] ] ]\n",
            "a: [b \"c, [ [ [ [ x ] ] ] ] ]\n",
            "a: [it's [[[[deep]]]]]\n",
            // Block text before the collection cannot confuse the scan either.
            "a: it's\nb: \"x\ny\"\nc: [[[[[x]]]]]\n",
            "a: |\n  text ' [\nb: [[[[[x]]]]]\n",
        ] {
            assert!(!depth_ok(hostile), "{hostile:?}");
        }
    }

    #[test]
    fn brackets_in_scalars_and_comments_of_a_flow_collection_are_text() {
        // Two levels of real nesting plus three brackets of text would be five.
        assert!(depth_ok("a: [['[[[', \"{{{\", x # [[[\n]]\n"));
        assert!(depth_ok("a: [['it''s [[[ quoted']]\n"));
    }

    /// A small xorshift generator: the same documents on every run.
    struct Rand(u64);

    impl Rand {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
    }

    /// A flow node with the scalars, quotes, comments and spacing that matter to the lexer.
    fn node(r: &mut Rand, depth: usize, out: &mut String) {
        let space = [" ", "", "\n ", " # ] } [ { ' \"\n", "\t"];
        match r.below(if depth > 6 { 3 } else { 6 }) {
            0 => out.push_str(r.pick(&[
                "a", "a'b", "a\"b", "a#b", "a b", "-a", "a:b", "a ' b", "x \" [", "&n a", "!t a",
            ])),
            1 => {
                out.push_str(r.pick(&["'a'", "']'", "'['", "'it''s ]'", "'#'", "'a\n b'", "'\\'"]))
            }
            2 => out.push_str(r.pick(&[
                "\"a\"",
                "\"]\"",
                "\"\\\" ]\"",
                "\"\\\\\"",
                "\"'\"",
                "\"a\n b\"",
                "\"\\\n]\"",
            ])),
            3 | 4 => {
                out.push('[');
                for i in 0..r.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(r.pick(&space));
                    node(r, depth + 1, out);
                    out.push_str(r.pick(&space));
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..r.below(3) {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(r.pick(&space));
                    out.push_str(r.pick(&["k", "'k]'", "\"k}\"", "k'"]));
                    out.push_str(": ");
                    node(r, depth + 1, out);
                    out.push_str(r.pick(&space));
                }
                out.push('}');
            }
        }
    }

    #[test]
    fn agrees_with_libyaml_on_random_flow_documents() {
        // Random flow documents, and one-character mutations of them: wherever libyaml
        // parses one, the scan's depth is at least libyaml's.
        let mut r = Rand(0x9e37_79b9_7f4a_7c15);
        let mutations = [
            "[", "]", "{", "}", ",", " ", "'", "\"", "\\", "#", "\n", ":", "&a ", "!t ", "?",
        ];
        let mut parsed = 0;
        for i in 0..20_000 {
            let mut doc = String::from("[");
            node(&mut r, 1, &mut doc);
            doc.push(']');
            if i % 2 == 1 {
                let at = r.below(doc.len());
                if doc.is_char_boundary(at) {
                    doc.insert_str(at, r.pick(&mutations));
                }
            }
            let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(&doc) else {
                continue;
            };
            // A sequence at the root is the flow sequence the document starts with, so all
            // its nesting is flow nesting, except `[a: b]` and `[? a]`: one-pair mappings
            // without a flow level of their own, left out.
            if !value.is_sequence() || has_implicit_pair(&value) {
                continue;
            }
            parsed += 1;
            let real = depth(&value);
            assert!(
                flow_depth_over(&doc, real - 1).is_some(),
                "{doc:?}: libyaml nests {real} deep, the scan saw less"
            );
        }
        assert!(parsed > 5000, "only {parsed} documents parsed");
    }

    fn has_implicit_pair(v: &serde_yaml::Value) -> bool {
        match v {
            serde_yaml::Value::Sequence(s) => s.iter().any(|i| {
                matches!(i, serde_yaml::Value::Mapping(m) if m.len() == 1) || has_implicit_pair(i)
            }),
            serde_yaml::Value::Mapping(m) => m
                .iter()
                .any(|(k, v)| has_implicit_pair(k) || has_implicit_pair(v)),
            serde_yaml::Value::Tagged(t) => has_implicit_pair(&t.value),
            _ => false,
        }
    }

    fn depth(v: &serde_yaml::Value) -> u32 {
        match v {
            serde_yaml::Value::Sequence(s) => 1 + s.iter().map(depth).max().unwrap_or(0),
            serde_yaml::Value::Mapping(m) => {
                1 + m
                    .iter()
                    .map(|(k, v)| depth(k).max(depth(v)))
                    .max()
                    .unwrap_or(0)
            }
            serde_yaml::Value::Tagged(t) => depth(&t.value),
            _ => 0,
        }
    }

    #[test]
    fn expansion_is_measured_through_aliases() {
        assert!(matches!(
            expansion_over("a: [x, y]\nb: {c: d}\n", 100),
            Expansion::Within
        ));
        let bomb = format!(
            "s: &s \"{}\"\nt: [{}]\n",
            "x".repeat(1000),
            ["*s"; 100].join(", ")
        );
        assert!(matches!(
            expansion_over(&bomb, 4 * bomb.len()),
            Expansion::Over
        ));
        assert!(matches!(expansion_over("a: [", 100), Expansion::Unparsed));
    }
}
